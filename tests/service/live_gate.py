"""A gate in a real job's live spool (tests only): the engine holds after its first full live
segment until the test opens it, so a test knows the job is running with segment 0 readable and
the later ones not. The pipeline is the real one (`run_pipeline`, the tiny model); only the
spool is wrapped. The engine's wait is a threading.Event, bounded by GATE_S.
"""

from __future__ import annotations

import errno
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import soundfile as sf

from conftest import synth_music
from musicsep.service.live import SEGMENT_FRAMES, LiveSpool
from musicsep.service.pipeline import run_pipeline
from server_harness import LiveServer, base_settings, start_server

GATE_S = 60.0


class Gate:
    """Holds the engine after its first full segment until `open()`; `fail_after_first`: the
    second segment's write hits a full disk instead (ENOSPC from the spool's store)."""

    def __init__(self, *, fail_after_first: bool = False) -> None:
        self.held = threading.Event()
        self.go = threading.Event()
        self.fail_after_first = fail_after_first
        self.store: Any = None

    def open(self) -> None:
        self.go.set()


class _FullDisk:
    """The service's own LiveAudio, except that a segment after the first finds the disk full."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def put_segment(self, job_id: str, stem: str, index: int, data: bytes) -> None:
        if index >= 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._store.put_segment(job_id, stem, index, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _HeldSpool:
    def __init__(self, spool: LiveSpool, gate: Gate) -> None:
        self._spool, self._gate, self._frames = spool, gate, 0

    def begin(self, *args: Any) -> None:
        self._spool.begin(*args)

    def write(self, blocks: Any) -> None:
        self._spool.write(blocks)
        before, self._frames = self._frames, self._frames + next(iter(blocks.values())).shape[-1]
        if before < SEGMENT_FRAMES <= self._frames:
            self._gate.held.set()
            assert self._gate.go.wait(GATE_S), "the test never opened the gate"

    def end(self) -> None:
        self._spool.end()


def gated(gate: Gate):
    def pipeline(spec, input_path, stems_dir, *, options, **rest: Any):
        job_id = input_path.parent.name
        store = _FullDisk(gate.store) if gate.fail_after_first else gate.store

        def live(level: str, announce: Any) -> _HeldSpool:
            return _HeldSpool(LiveSpool(store, job_id, level, announce), gate)

        return run_pipeline(spec, input_path, stems_dir, options=replace(options, live=live), **rest)

    return pipeline


def start_held(folder: Path, model_repo: Path, gate: Gate, **settings: Any) -> tuple[LiveServer, dict[str, Any]]:
    """A server with the gated pipeline and one 6 s float32 job on it (4 live segments), returned
    (with POST /jobs's answer) once the engine holds after segment 0. The caller stops the server."""
    clip = folder / "song.wav"
    sf.write(str(clip), synth_music(6.0, seed=7).T, 44100)
    server = start_server(base_settings(folder / "data", model_repo, **settings), gated(gate))
    gate.store = server.service.artifacts.live
    try:
        with clip.open("rb") as handle:
            accepted = httpx.post(
                f"{server.url}/api/v1/jobs",
                files={"file": ("song.wav", handle)},
                data={"analyze": "false", "format": "float32", "clip": "none"},
                timeout=60,
            ).json()
        assert gate.held.wait(GATE_S), "the engine never reached the end of segment 0"
    except BaseException:
        gate.open()
        server.stop()
        raise
    return server, accepted
