"""Typed errors of the model layer.

Each carries a stable `code` that the CLI turns into an exit status and the server into an HTTP
status or a `failed` event; the message is written for the person who sent the file, so it never
contains a server path.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager


class MusicsepError(Exception):
    """Base of every error a user can cause or act on."""

    code = "error"
    #: CLI exit status for this kind of failure (DESIGN: 3 bad input, 4 model unavailable, 5 disk full).
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidAudio(MusicsepError):
    """The bytes are a known container but hold no usable audio (empty, truncated, NaN, no stream)."""

    code = "invalid_audio"
    exit_code = 3


class UnsupportedFormat(MusicsepError):
    """The bytes are not a media format we can decode (text, image, unknown container)."""

    code = "unsupported_format"
    exit_code = 3


class AudioTooLong(MusicsepError):
    """Decoded audio exceeded the configured maximum duration (counted while decoding)."""

    code = "audio_too_long"
    exit_code = 3


class InvalidOptions(MusicsepError):
    """Separation options that contradict the model (unknown stem, segment too long, ...)."""

    code = "invalid_options"
    exit_code = 2


class ModelUnavailable(MusicsepError):
    """The model's weights cannot be found locally nor downloaded, or it needs a missing package."""

    code = "model_unavailable"
    exit_code = 4


class DeviceUnavailable(MusicsepError):
    """An explicit device this machine does not have (`mps` on Linux, `cuda` without a GPU)."""

    code = "device_unavailable"
    exit_code = 4


class Cancelled(MusicsepError):
    """The caller asked to stop; raised between chunks, after partial outputs were removed."""

    code = "cancelled"
    exit_code = 130


class StorageFull(MusicsepError):
    """The disk (or the quota) that holds the job's files ran out while they were written."""

    code = "storage_full"
    exit_code = 5


#: errno values that mean "no room left": a full filesystem, or the owner's quota used up.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})

#: Said by the server and the CLI alike, so it names neither.
STORAGE_FULL_MESSAGE = (
    "there was not enough disk space to write the results; nothing was kept. "
    "Try again later (or ask for fewer stems or a compressed format)"
)


def storage_full(exc: BaseException) -> StorageFull | None:
    """A `StorageFull` when `exc`, or any error it was raised from, is a full disk; else None.

    The whole chain is searched because libraries re-raise I/O errors as their own (PyAV's
    `av.error.OSError`, a `with` block's cleanup raising over the first error).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, StorageFull):
            return current
        if isinstance(current, OSError) and current.errno in _NO_ROOM:
            return StorageFull(STORAGE_FULL_MESSAGE)
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def storage_full_is_typed() -> Iterator[None]:
    """Re-raise a full-disk error inside the block as `StorageFull` (other errors pass untouched)."""
    try:
        yield
    except StorageFull:
        raise
    except Exception as exc:
        full = storage_full(exc)
        if full is None:
            raise
        raise full from exc
