"""Per stem of a finished job: a small compressed preview and its waveform peaks.

A browser that plays a job's stems would otherwise download every full WAV first (84 MB for two
minutes of four stems). Each stem file is decoded once, block by block, and feeds both the Ogg
Opus writer (the project's own `StemWriter`, at a modest bitrate) and the peaks meter, so memory
stays one block whatever the length. Files are written beside the stems
(`<stem>.preview.ogg`, `<stem>.peaks.json`), where the artifact store keeps them with the stems.
"""

from __future__ import annotations

import contextvars
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

#: Opus at 96 kbps stereo: transparent enough to judge a separation, ~0.7 MB per minute per stem.
PREVIEW_KBPS = 96
PREVIEW_MEDIA_TYPE = "audio/ogg"
#: Stems encoded at once at most (a six-stem model on a big machine leaves cores to other jobs).
_MAX_THREADS = 4
PEAKS_MEDIA_TYPE = "application/json"
#: Content-Type of each kind of file (artifacts.PREVIEW_KINDS).
MEDIA_TYPES = {"preview": PREVIEW_MEDIA_TYPE, "peaks": PEAKS_MEDIA_TYPE}


@dataclass(frozen=True)
class StemPreview:
    preview: Path
    peaks: Path


def preview_names(stem: str) -> dict[str, str]:
    """{kind: file name} of a stem's preview files (stem names hold no dots, so they cannot collide)."""
    return {"preview": f"{stem}.preview.ogg", "peaks": f"{stem}.peaks.json"}


def write_previews(stems: dict[str, Path], samplerate: int) -> dict[str, StemPreview]:
    """Blocking: each stem's preview and peaks, written beside it, the stems side by side in
    threads (FFmpeg's decoder and libopus release the GIL), so a job waits about one stem's time."""
    workers = max(1, min(len(stems), os.cpu_count() or 1, _MAX_THREADS))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="musicsep-preview") as pool:
        futures = {name: pool.submit(write_preview, name, path, samplerate) for name, path in stems.items()}
        return {name: future.result() for name, future in futures.items()}


class BackgroundPreviews:
    """`write_previews` in a thread of its own, so that a job's previews are written while its
    track is analysed (both mostly wait on FFmpeg, libopus and numpy, which release the GIL):
    the job then waits for the longer of the two, not their sum."""

    def __init__(self, stems: dict[str, Path], samplerate: int) -> None:
        self.seconds = 0.0
        self._written: dict[str, StemPreview] = {}
        # The caller's context (the job id its log lines carry) goes with the thread.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run, stems, samplerate), name="musicsep-previews", daemon=True
        )
        self._thread.start()

    def _run(self, stems: dict[str, Path], samplerate: int) -> None:
        started = time.monotonic()
        try:
            self._written = write_previews(stems, samplerate)
        except Exception as exc:  # noqa: BLE001 - a preview is a convenience: the stems are complete
            logger.opt(exception=exc).warning("no previews for this job's stems")
        finally:
            self.seconds = time.monotonic() - started

    def result(self) -> dict[str, StemPreview]:
        """Wait for them: each stem's files, or {} when they could not be written (logged)."""
        self._thread.join()
        return self._written


def write_preview(name: str, stem: Path, samplerate: int) -> StemPreview:
    from musicsep.model.analysis.peaks import PeakMeter
    from musicsep.model.audio import StemWriter, decode_blocks

    names = preview_names(name)
    preview, peaks = stem.with_name(names["preview"]), stem.with_name(names["peaks"])
    meter = PeakMeter(samplerate)
    with StemWriter(preview, "ogg", samplerate, channels=2, clip="clamp", bitrate=PREVIEW_KBPS) as writer:
        for block in decode_blocks(stem, samplerate=samplerate, channels=2):
            meter.add(block)
            writer.write(block)
    part = peaks.with_name(f".{peaks.name}.part")
    part.write_text(json.dumps(meter.result(), separators=(",", ":")))
    part.replace(peaks)
    return StemPreview(preview, peaks)
