"""Where a download goes: the name it gets in its folder, and a file that is whole or absent.

The server names stems after the song (`Song Title - vocals.wav`) in Content-Disposition, twice
as RFC 6266 recommends: `filename*` in UTF-8, then an ASCII `filename` for clients that read no
other. The standard library's `Message.get_filename` returns whichever comes first (the ASCII
one), so the parameters are read here and `filename*` wins. A name from a server is never a
path: only its last part is kept, on either separator, and `.`/`..` are no names.

A download is written beside its destination under a temporary name and renamed over it only
once complete, so a connection lost half-way leaves neither a truncated stem that looks like a
result nor a half-overwritten earlier copy.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from email.utils import collapse_rfc2231_value
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

#: What a file is called when neither the server nor its URL gives a usable name.
FALLBACK_NAME = "download"


def filename_from(disposition: str, url: str) -> str:
    """Content-Disposition's file name (`filename*` first), else the URL's last path segment."""
    message = Message()
    message["content-disposition"] = disposition
    params = [value for key, value in message.get_params([], header="content-disposition") if key == "filename"]
    params.sort(key=lambda value: not isinstance(value, tuple))  # RFC 2231/5987 values are tuples
    for value in params:
        if name := _file_name(collapse_rfc2231_value(value)):
            return name
    return _file_name(unquote(urlsplit(url).path)) or FALLBACK_NAME


def _file_name(text: str) -> str:
    """The last part of `text` as a file name in a folder ("" when there is none)."""
    name = PureWindowsPath(PurePosixPath(text).name).name.strip()
    return "" if name in ("", ".", "..") else name


@contextmanager
def whole_file(dest: Path) -> Iterator[BinaryIO]:
    """A file to write `dest`'s bytes to: `dest` once the block ends, nothing if it raises.

    The temporary file is opened as `open` would (not with tempfile's owner-only mode), so the
    stem gets the permissions any file the user writes gets."""
    part = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
    try:
        with part.open("xb") as handle:
            yield handle
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
