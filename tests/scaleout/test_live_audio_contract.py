"""The `LiveAudio` contract (service/interfaces.py) for both implementations: local files and S3
objects on moto's server. A spool written by one node (the worker) is read by another (the API),
segment by segment; the grace sweep removes exactly the jobs that ended before its cut-off; a
job's removal leaves nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from musicsep.service.artifacts import JobFolders
from musicsep.service.interfaces import LiveAudio
from musicsep.service.live import SEGMENT_FRAMES, LiveSpool, LocalLiveAudio


@dataclass
class Nodes:
    worker: LiveAudio
    api: LiveAudio


@pytest.fixture(params=["local", "s3"])
def nodes(request, tmp_path) -> Iterator[Nodes]:
    if request.param == "local":
        folders = JobFolders(tmp_path / "data")
        yield Nodes(LocalLiveAudio(folders), LocalLiveAudio(folders))
        return
    pytest.importorskip("boto3", reason="the `scaleout` extra (boto3) is not installed")
    import boto3

    from musicsep.scaleout.live_s3 import S3LiveAudio
    from musicsep.scaleout.s3_store import S3Bucket

    endpoint = request.getfixturevalue("s3_endpoint")
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    name = f"musicsep-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    yield Nodes(
        S3LiveAudio(S3Bucket(name, client=client, prefix="l/")), S3LiveAudio(S3Bucket(name, client=client, prefix="l/"))
    )


def _spool(store: LiveAudio, frames: int, *, blocks: int = 7) -> tuple[str, dict[str, np.ndarray], list[int]]:
    """A job's whole spool through `LiveSpool`, in uneven blocks; (job id, the stems, announcements)."""
    job_id = uuid.uuid4().hex
    rng = np.random.default_rng(1)
    stems = {name: rng.standard_normal((2, frames)).astype(np.float32) for name in ("vocals", "no_vocals")}
    announced: list[int] = []
    spool = LiveSpool(store, job_id, "final", lambda ready, rate: announced.append(ready))
    spool.begin(44100, 2, list(stems), frames)
    cuts = np.linspace(0, frames, blocks + 1).astype(int)
    for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
        spool.write({name: samples[:, start:stop] for name, samples in stems.items()})
    spool.end()
    return job_id, stems, announced


def test_every_implementation_meets_the_protocol(nodes):
    assert isinstance(nodes.worker, LiveAudio) and isinstance(nodes.api, LiveAudio)


def test_a_spool_written_on_one_node_reads_back_on_another_segment_by_segment(nodes):
    frames = 3 * SEGMENT_FRAMES + 1234
    job_id, stems, announced = _spool(nodes.worker, frames)
    assert announced == [SEGMENT_FRAMES, 2 * SEGMENT_FRAMES, 3 * SEGMENT_FRAMES, frames]
    state = nodes.api.state(job_id)
    assert state is not None and state.done and state.segments_ready == 4 and state.total_frames == frames
    assert state.stems == ["vocals", "no_vocals"] and (state.samplerate, state.channels) == (44100, 2)
    for name, samples in stems.items():
        parts = [nodes.api.segment(job_id, state, name, index) for index in range(4)]
        joined = np.frombuffer(b"".join(parts), dtype="<f4").reshape(-1, 2).T
        assert np.array_equal(joined, samples)
    with pytest.raises(KeyError):
        nodes.api.segment(job_id, state, "drums", 0)
    assert nodes.api.state(uuid.uuid4().hex) is None


def test_the_sweep_removes_exactly_the_jobs_that_ended_before_its_cut_off(nodes):
    old, _, _ = _spool(nodes.worker, 1000)
    recent, _, _ = _spool(nodes.worker, 1000)
    running, _, _ = _spool(nodes.worker, 1000)
    nodes.worker.ended(old, 1_000_000.0)
    nodes.worker.ended(recent, 2_000_000.0)
    assert nodes.api.sweep(1_500_000.0) == 1
    assert nodes.api.state(old) is None
    assert nodes.api.state(recent) is not None and nodes.api.state(running) is not None
    assert nodes.api.sweep(1_500_000.0) == 0, "a second pass finds nothing"
    nodes.api.remove(recent)
    nodes.api.remove(running)
    assert nodes.api.state(recent) is None and nodes.api.state(running) is None


def test_a_spool_begun_again_forgets_the_earlier_attempt(nodes):
    job_id, _, _ = _spool(nodes.worker, 2 * SEGMENT_FRAMES)
    spool = LiveSpool(nodes.worker, job_id, "unscaled")
    spool.begin(44100, 2, ["vocals"], 5000)
    state = nodes.api.state(job_id)
    assert state is not None and state.ready_frames == 0 and state.stems == ["vocals"] and state.level == "unscaled"
    with pytest.raises(KeyError):
        nodes.api.segment(job_id, state, "vocals", 0)
