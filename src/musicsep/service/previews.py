"""Per stem of a finished job: a small compressed preview and its waveform peaks.

A browser that plays a job's stems would otherwise download every full WAV first (84 MB for two
minutes of four stems). Each stem file is decoded once, block by block, and feeds both the Ogg
Opus writer (the project's own `StemWriter`, at a modest bitrate) and the peaks meter, so memory
stays one block whatever the length. Files are written beside the stems
(`<stem>.preview.ogg`, `<stem>.peaks.json`), where the artifact store keeps them with the stems.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

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
