"""The job runner: separation threads yield the CPU to the event loop (Linux nice values)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest
import torch

from musicsep.service.runner import ThreadRunner

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")


def nice_of(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])


def test_the_job_thread_and_the_compute_threads_it_starts_run_niced_while_the_loop_does_not():
    def separate_like() -> tuple[int, list[int]]:
        before = set(os.listdir("/proc/self/task"))
        matrix = torch.randn(1500, 1500)
        (matrix @ matrix).sum()  # an OpenMP parallel region: creates this thread's compute team
        started = [int(tid) for tid in set(os.listdir("/proc/self/task")) - before]
        return nice_of(threading.get_native_id()), [nice_of(tid) for tid in started]

    async def main() -> tuple[int, list[int], int]:
        runner = ThreadRunner(1, nice=7)
        try:
            job_nice, compute_nices = await runner.run("job", separate_like)
        finally:
            runner.shutdown()
        return job_nice, compute_nices, nice_of(threading.get_native_id())

    base = nice_of(threading.get_native_id())  # the test itself may run under `nice`
    job_nice, compute_nices, loop_nice = asyncio.run(main())
    assert (job_nice, loop_nice) == (max(base, 7), base)
    if torch.get_num_threads() > 1:
        assert compute_nices, "the matrix product started no compute thread"
    assert compute_nices == [job_nice] * len(compute_nices)


def test_nice_zero_leaves_the_priority_alone():
    async def main() -> int:
        runner = ThreadRunner(1, nice=0)
        try:
            return await runner.run("job", lambda: nice_of(threading.get_native_id()))
        finally:
            runner.shutdown()

    assert asyncio.run(main()) == nice_of(threading.get_native_id())
