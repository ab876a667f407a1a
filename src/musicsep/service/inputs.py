"""A job's input file: the checks every input passes, and the fetch of an `audio_url`.

An upload is checked by the API before a job exists, so a bad file is an HTTP status (415, 422).
An `audio_url` is fetched by whoever runs the job (the embedded server's worker thread or a
Celery worker: the input is needed where the engine runs, and a slow site must not hold an HTTP
request open), so the same checks run there after the download, and a refusal or a failure
becomes the job's `failed` event, worded for the person who sent the URL.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import BinaryIO

from musicsep.config import Settings
from musicsep.model.errors import AudioTooLong, MusicsepError, UnsupportedFormat
from musicsep.service.fetch import FetchLimits, UrlFetchFailed, UrlRefused, fetch_to_file

NOT_AUDIO = (
    "the file is not an audio format this server decodes (WAV, FLAC, MP3, Ogg, M4A/AAC, AIFF, or audio in MP4/WebM/MKV)"
)


def fetch_limits(settings: Settings) -> FetchLimits:
    """The caps of an `audio_url` download: an upload's size limit and `url_timeout_s`."""
    return FetchLimits(
        max_bytes=int(settings.max_upload_mb * 1024 * 1024),
        timeout_s=settings.url_timeout_s,
        allow_loopback=settings.allow_loopback_urls,
    )


def refuse_unless_audio(head: bytes) -> None:
    """Raise UnsupportedFormat unless the first bytes are a format the decoder reads."""
    from musicsep.model.audio import sniff_format

    if sniff_format(head) is None:
        raise UnsupportedFormat(NOT_AUDIO)


def refuse_if_too_long(path: Path, max_duration_s: float | None) -> None:
    """Raise AudioTooLong when the header claims more than the limit (the decoder enforces it too)."""
    from musicsep.model.audio import probe

    claimed = probe(path).duration_s
    if max_duration_s is not None and claimed is not None and claimed > max_duration_s:
        raise AudioTooLong(f"the audio lasts {claimed:.0f} s; this server accepts up to {max_duration_s:.0f} s")


def read_head(handle: BinaryIO) -> bytes:
    """The first bytes of an input, as many as `refuse_unless_audio` needs to recognise it."""
    from musicsep.model.audio.sniff import HEAD_BYTES

    return handle.read(max(HEAD_BYTES, 64))


def head_bytes(path: Path) -> bytes:
    with path.open("rb") as handle:
        return read_head(handle)


def fetch_input(
    url: str, dest: Path, limits: FetchLimits, *, max_duration_s: float | None, cancel: threading.Event
) -> None:
    """Download `url` into `dest` and check it like an upload. Blocking (a worker thread).

    The download goes to a `.part` file renamed when complete and checked, so a worker killed
    mid-download leaves no half file that a re-run would take for the input.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        fetch_to_file(url, part, limits, cancelled=cancel.is_set)
    except UrlRefused as exc:
        raise UrlRefused(f"audio_url refused: {exc.message}") from None
    except UrlFetchFailed as exc:
        raise UrlFetchFailed(f"audio_url could not be downloaded: {exc.message}") from None
    try:
        refuse_unless_audio(head_bytes(part))
        refuse_if_too_long(part, max_duration_s)
    except MusicsepError as exc:
        part.unlink(missing_ok=True)
        raise type(exc)(f"the file at audio_url: {exc.message}") from None
    os.replace(part, dest)
