"""A disk that fills while stems are written: the job fails `storage_full`, nothing half-written stays.

The full disk is real, not injected: each test mounts its own small tmpfs (`mount -t tmpfs -o
size=…`, tests/small_disk.py) and unmounts it at the end. Mounting needs root (CAP_SYS_ADMIN);
where the test runner is not allowed to mount, these tests skip rather than fake the error.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import httpx
import numpy as np
import pytest

from musicsep.model.audio import FORMATS, StemWriter
from musicsep.model.errors import StorageFull
from server_harness import stream_events
from small_disk import small_disk  # noqa: F401 (a fixture)

SAMPLERATE = 44100
#: Files the data dir keeps besides job folders (the job store and the signing key).
SERVICE_FILES = {"musicsep.sqlite3", "musicsep.sqlite3-wal", "musicsep.sqlite3-shm", "signing.key"}


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def _fill(folder: Path, leave: int) -> None:
    """Take all the free space of `folder`'s filesystem but `leave` bytes."""
    free = shutil.disk_usage(folder).free
    with (folder / "filler").open("wb") as handle:
        handle.write(b"\0" * max(0, free - leave))


def _music(frames: int) -> np.ndarray:
    t = np.arange(frames) / SAMPLERATE
    return (0.4 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)])).astype(np.float32)


# --- the model layer: every encoder, full during writes and full at close ------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("clip", ["clamp", "rescale"])
def test_a_stem_writer_that_fills_the_disk_raises_storage_full_and_leaves_no_file(small_disk, fmt, clip):
    """Before: libsndfile's bare `LibsndfileError('System error.')`, or an OSError; no typed error."""
    disk = small_disk("1m")
    block = _music(SAMPLERATE)
    with pytest.raises(StorageFull) as raised:
        with StemWriter(disk / f"vocals.{FORMATS[fmt].extension}", fmt, SAMPLERATE, clip=clip) as writer:
            for _ in range(60):  # 60 s of audio: far more than 1 MiB in every format
                writer.write(block)
    assert raised.value.code == "storage_full"
    assert str(disk) not in raised.value.message
    assert _files(disk) == []


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_disk_that_fills_in_the_second_pass_of_rescale_raises_storage_full(small_disk, fmt):
    """The float spill fits; the encoded file written from it at close() does not: 30 s of noise,
    which no encoder squeezes into the 16 KiB left, and more than any of them buffers in memory
    (FFmpeg's Ogg output holds its first ~256 KiB before writing) before the spill is let go."""
    disk = small_disk("16m")
    block = (0.3 * np.random.default_rng(0).standard_normal((2, SAMPLERATE))).astype(np.float32)
    seconds = 30
    _fill(disk, seconds * block.nbytes + 16 * 1024)
    with pytest.raises(StorageFull):
        with StemWriter(disk / f"bass.{FORMATS[fmt].extension}", fmt, SAMPLERATE, clip="rescale") as writer:
            for _ in range(seconds):
                writer.write(block)
    assert _files(disk) == [disk / "filler"]


# --- the server: the job fails storage_full, the store stays whole, the next job runs -------------


def test_disk_full_while_encoding_fails_the_job_with_storage_full_and_the_server_goes_on(
    small_disk, live_server, make_clip
):
    """Before: `failed {code: internal_error}` ("the separation failed unexpectedly").

    The whole data dir (uploads, job folders, the SQLite store) is on one 8 MiB tmpfs, as on a
    server whose one disk fills: a 10 s upload (1.7 MiB) and its decoded track (3.4 MiB) fit, its
    four stems' float spills (13.5 MiB) do not. The job store is written after the writers have
    removed their partial files, so the failure is recorded in the room they freed.
    """
    data_dir = small_disk("8m")
    server = live_server(data_dir=data_dir, max_concurrent=1)
    baseline = {path.name for path in _files(data_dir)}

    with make_clip(seconds=10.0).open("rb") as handle:
        response = httpx.post(
            f"{server.url}/api/v1/jobs",
            files={"file": ("song.wav", handle)},
            data={"analyze": "false", "format": "wav16"},
            timeout=60,
        )
    assert response.status_code == 202, response.text
    job = response.json()
    status, events = stream_events(server.url + job["events_url"], timeout_s=120)
    assert status == 200
    assert [event_id for event_id, _, _ in events] == list(range(1, len(events) + 1))
    kind, data = events[-1][1], events[-1][2]
    assert kind == "failed"
    assert data["code"] == "storage_full"
    assert "disk space" in data["message"] and str(data_dir) not in data["message"]

    # The row says the same, and the store is whole.
    record = httpx.get(server.url + job["status_url"], timeout=10).json()
    assert record["status"] == "failed"
    with sqlite3.connect(f"file:{data_dir / 'musicsep.sqlite3'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # No partial stem, spill, decoded track or input is left anywhere on the disk.
    leftovers = {path.relative_to(data_dir).as_posix() for path in _files(data_dir)} - SERVICE_FILES
    assert leftovers == set(), leftovers
    assert {path.name for path in _files(data_dir)} <= SERVICE_FILES | baseline

    # The server goes on: a job that fits completes, and its stems download.
    with make_clip(seconds=1.0, seed=3).open("rb") as handle:
        response = httpx.post(
            f"{server.url}/api/v1/jobs",
            files={"file": ("small.wav", handle)},
            data={"analyze": "false", "format": "wav16"},
            timeout=60,
        )
    assert response.status_code == 202, response.text
    small = response.json()
    status, events = stream_events(server.url + small["events_url"], timeout_s=120)
    assert events[-1][1] == "completed", events[-1]
    stems = events[-1][2]["stems"]
    assert len(stems) == 4
    first = next(iter(stems.values()))
    download = httpx.get(first["url"] if first["url"].startswith("http") else server.url + first["url"], timeout=30)
    assert download.status_code == 200 and len(download.content) == first["bytes"]
