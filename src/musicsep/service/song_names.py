"""A job's song names: the file name it came with, its title, and the names of its downloads.

People find their jobs by the song, not by a job id, so a job keeps the name its file had (the
upload's, or the last path segment of its `audio_url`) and a title shown in lists and used to
name the downloads (`Song Title - vocals.wav`, `Song Title - stems.zip`). A file name sent by a
client is text to show, never a path: only its last segment is kept, without control characters.
"""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import quote, unquote, urlsplit

from musicsep.protocol import TITLE_MAX

#: Longest file name kept (what common file systems allow for one name).
SOURCE_NAME_MAX = 255
#: Characters that file systems or the header's quoted string do not take in a file name.
_NOT_IN_FILE_NAMES = frozenset('/\\:*?"<>|')
#: RFC 5987's attr-char beyond letters and digits: what `filename*` may carry unencoded.
_ATTR_CHARS = "!#$&+-.^_`|~"


def _printable(text: str) -> str:
    return "".join(char for char in text if unicodedata.category(char)[0] != "C" or char in "\u200c\u200d")


def source_name_of_upload(filename: str | None) -> str | None:
    """The upload's file name without any folder part (browsers on Windows may send one)."""
    if not filename:
        return None
    name = _printable(PureWindowsPath(filename).name).strip()[:SOURCE_NAME_MAX]
    return name or None


def source_name_of_url(url: str) -> str | None:
    """The URL's last path segment, percent-decoded (`My%20Song.mp3` is `My Song.mp3`)."""
    segment = PurePosixPath(urlsplit(url).path).name
    return source_name_of_upload(unquote(segment, errors="replace"))


def default_title(source_name: str | None) -> str | None:
    """The file name without its extension, as a title (None without a file name)."""
    if source_name is None:
        return None
    stem = PurePosixPath(source_name).stem if "." in source_name.strip(".") else source_name
    return stem.strip()[:TITLE_MAX].strip() or None


def download_name(title: str | None, job_id: str, part: str, extension: str) -> str:
    """`Song Title - vocals.wav`; an untitled job's downloads keep the job id's first digits."""
    if title is None:
        return f"{job_id[:12]}-{part}.{extension}"
    safe = "".join("_" if char in _NOT_IN_FILE_NAMES else char for char in title)
    return f"{safe} - {part}.{extension}"


def content_disposition(filename: str) -> str:
    """`attachment` with the name twice, as RFC 6266 recommends: `filename*` in UTF-8 for every
    client that reads it, then an ASCII `filename` for those that do not (accents dropped,
    other characters `_`). Hand-written: Starlette's FileResponse sends only `filename*` when
    the name is not ASCII, and the presigned S3 URLs need the same header text."""
    fallback = "".join(
        "" if unicodedata.category(char) == "Mn" else char if " " <= char <= "~" and char not in '"\\' else "_"
        for char in unicodedata.normalize("NFKD", filename)
    )
    encoded = quote(filename, safe=_ATTR_CHARS)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
