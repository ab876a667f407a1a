"""Typed errors of the model layer.

Each carries a stable `code` that the CLI turns into an exit status and the server into an HTTP
status or a `failed` event; the message is written for the person who sent the file, so it never
contains a server path.
"""

from __future__ import annotations


class MusicsepError(Exception):
    """Base of every error a user can cause or act on."""

    code = "error"
    #: CLI exit status for this kind of failure (DESIGN: 3 bad input, 4 model unavailable).
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


class DeviceUnavailable(MusicsepError):
    """An explicit device this machine does not have (`mps` on Linux, `cuda` without a GPU)."""

    code = "device_unavailable"
    exit_code = 4


class Cancelled(MusicsepError):
    """The caller asked to stop; raised between chunks, after partial outputs were removed."""

    code = "cancelled"
    exit_code = 130
