"""The name a downloaded file gets in the folder it is saved to.

The server names stems after the song (`Song Title - vocals.wav`) in Content-Disposition, twice
as RFC 6266 recommends: `filename*` in UTF-8, then an ASCII `filename` for clients that read no
other. The standard library's `Message.get_filename` returns whichever comes first (the ASCII
one), so the parameters are read here and `filename*` wins. A name from a server is never a
path: only its last part is kept, on either separator, and `.`/`..` are no names.
"""

from __future__ import annotations

from email.message import Message
from email.utils import collapse_rfc2231_value
from pathlib import PurePosixPath, PureWindowsPath
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
