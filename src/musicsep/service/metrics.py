"""Prometheus metrics of one service instance, in its own registry (several apps per test process)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from musicsep.service.jobs import JobStatus


class _JobsByState(Collector):
    """Reads the counts from the job store at scrape time, so they are right after a restart."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("musicsep_jobs", "Jobs in the store by state.", labels=["state"])
        counts = self._counts()
        for state in JobStatus:
            family.add_metric([state.value], counts.get(state.value, 0))
        yield family


class ServiceMetrics:
    def __init__(
        self,
        job_counts: Callable[[], dict[str, int]],
        queue_depth: Callable[[], int],
        live_threads: Callable[[], int],
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_JobsByState(job_counts))
        Gauge("musicsep_queue_depth", "Jobs waiting for a slot.", registry=self.registry).set_function(queue_depth)
        Gauge(
            "musicsep_separation_threads", "Worker threads inside a separation now.", registry=self.registry
        ).set_function(live_threads)
        self.finished = Counter(
            "musicsep_jobs_finished", "Jobs that reached a terminal state.", ["state"], registry=self.registry
        )
        self.separation_seconds = Histogram(
            "musicsep_separation_seconds",
            "Wall time of the pipeline of completed jobs.",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            registry=self.registry,
        )
        self.realtime_factor = Histogram(
            "musicsep_realtime_factor",
            "Processing time over audio duration of completed jobs (below 1 is faster than real time).",
            buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
            registry=self.registry,
        )
