"""Where a job's files live, and the signatures that let a browser fetch them without headers.

Layout under the data dir: `jobs/<job_id>/input` (the upload, removed when the job ends) and
`jobs/<job_id>/stems/<stem>.<ext>`. Files are found by job id plus a stem name that must be one of
the job's own result names: no path the user typed ever reaches the filesystem.
Signed URLs and stream tokens are HMAC-SHA256 over (purpose, job, name, expiry), length-prefixed,
with one server key; `hmac.compare_digest` compares them in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import SecretStr

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
#: An expiry as links carry it: ASCII digits only. `str.isdigit()` and `int()` also take '²' or
#: '٣' (the first then fails in int(): a 500), and pydantic's int takes '+5', ' 5', '5.0', '5_0'.
_EXPIRY = re.compile(r"[0-9]{1,15}")
_ZIP_CHUNK = 1 << 20

#: Opens one stored stem for reading (a local file, or an S3 object's streaming body); called
#: only when the zip reaches that stem, so one stem at a time is open.
StemOpener = Callable[[], BinaryIO]


#: HMAC-SHA256 keys shorter than its 32-byte output weaken it; an empty one lets anyone sign.
MIN_KEY_BYTES = 32
KEY_FILE = "signing.key"


class SigningKeyRefused(RuntimeError):
    """The configured or stored signing key is too short to sign with: the server does not start."""


def signing_key(configured: SecretStr | None, data_dir: Path) -> bytes:
    """`MUSICSEP_SIGNING_KEY` when set (its length is checked by Settings), else the key file."""
    if configured is not None:
        key = configured.get_secret_value().encode()
        if len(key) < MIN_KEY_BYTES:
            raise SigningKeyRefused(f"MUSICSEP_SIGNING_KEY must be at least {MIN_KEY_BYTES} bytes")
        return key
    return load_or_create_key(data_dir)


def load_or_create_key(data_dir: Path) -> bytes:
    """The signing key: kept in the data dir so that links survive a restart.

    Refuses a file shorter than MIN_KEY_BYTES (the old non-atomic write left an empty one after a
    crash or a full disk) instead of signing with it.
    """
    path = data_dir / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        return _create_key(path)
    if len(key) < MIN_KEY_BYTES:
        raise SigningKeyRefused(
            f"{path} holds {len(key)} bytes; a signing key needs at least {MIN_KEY_BYTES} (an interrupted "
            "first write leaves the file empty). Delete it to have a new key generated at the next start "
            "(links and stream tokens signed with the old one stop working), or set MUSICSEP_SIGNING_KEY to "
            f"at least {MIN_KEY_BYTES} random bytes, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return key


def _create_key(path: Path) -> bytes:
    """Write a new key so that `path` is either absent or whole: a temp file in the same folder
    (mode 0600 from mkstemp), fsync, then a hard link to the final name, which, unlike a rename,
    never replaces a key another process sharing the data dir created meanwhile; then the folder
    is fsynced so the name survives a power cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(MIN_KEY_BYTES)
    fd, temp = tempfile.mkstemp(prefix=f".{KEY_FILE}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return load_or_create_key(path.parent)
    finally:
        os.unlink(temp)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return key


def _signed_message(*fields: str) -> bytes:
    """The fields as one message that no other tuple of fields gives: each field's UTF-8 bytes
    after their length (8 bytes, big-endian). Fields joined with a separator were ambiguous
    (("stem", "a\nb", "c") and ("stem", "a", "b\nc") signed alike). `surrogatepass` keeps the
    encoding one-to-one and lets any `str` through (a lone surrogate raised UnicodeEncodeError)."""
    message = bytearray()
    for field in fields:
        data = field.encode("utf-8", "surrogatepass")
        message += len(data).to_bytes(8, "big") + data
    return bytes(message)


class Signer:
    """Expiring HMAC signatures for download URLs and per-job stream tokens.

    The MAC is over `_signed_message(purpose, job, name, expiry)`. Links and tokens signed with
    the earlier newline-joined message no longer verify; that costs nothing lasting, because the
    API signs links afresh each time a job is read (and a refused link's error says to GET the
    job for fresh ones), and stream tokens live half an hour (MUSICSEP_STREAM_TOKEN_TTL_S).
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, job_id: str, name: str, expires: int) -> str:
        message = _signed_message(purpose, job_id, name, str(expires))
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")

    def sign_until(self, purpose: str, job_id: str, name: str, expires: int) -> tuple[int, str]:
        return expires, self._mac(purpose, job_id, name, expires)

    def verify(self, purpose: str, job_id: str, name: str, expires: int | str, signature: str) -> bool:
        """True for an unexpired signature this key made. `expires` is the link's text (or an int):
        anything but ASCII digits, and any signature that is not ASCII, is simply not valid."""
        text = str(expires)
        # compare_digest raises TypeError on str with non-ASCII characters: they are refused first.
        if not _EXPIRY.fullmatch(text) or not signature.isascii() or int(text) < time.time():
            return False
        return hmac.compare_digest(self._mac(purpose, job_id, name, int(text)), signature)

    def stream_token(self, job_id: str, ttl_s: float) -> str:
        expires, mac = self.sign_until("events", job_id, "", int(time.time() + ttl_s))
        return f"{expires}.{mac}"

    def check_stream_token(self, job_id: str, token: str) -> bool:
        expires, _, mac = token.partition(".")
        return self.verify("events", job_id, "", expires, mac)


def discard(upload: Path | None) -> None:
    """Remove an upload that no job took (refused, or an idempotent repeat); None: nothing to do."""
    if upload is not None:
        upload.unlink(missing_ok=True)


class ArtifactStore:
    """Local-disk artifacts of the embedded mode."""

    def __init__(self, root: Path) -> None:
        self.root = root / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: str) -> Path:
        if not _JOB_ID.match(job_id):
            raise ValueError("not a job id")
        return self.root / job_id

    def input_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "input"

    def stems_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "stems"

    def stem_path(self, job_id: str, filename: str) -> Path:
        """`filename` comes from the job's stored result, never from the request."""
        return self.stems_dir(job_id) / filename

    def stem_opener(self, job_id: str, filename: str) -> StemOpener:
        """Opens the stem later; its presence is checked now (KeyError when it is gone), so that
        a zip route can answer 404 before its 200 rather than cut the zip short."""
        path = self.stem_path(job_id, filename)
        if not path.is_file():
            raise KeyError(filename)
        return lambda: path.open("rb")

    def clear_stems(self, job_id: str) -> None:
        shutil.rmtree(self.stems_dir(job_id), ignore_errors=True)

    def remove_input(self, job_id: str) -> None:
        self.input_path(job_id).unlink(missing_ok=True)

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def inline(self, job_id: str, stems: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The stems of a result with their bytes as base64 (`payload=base64`) instead of links."""
        return {
            name: {
                "data": base64.b64encode(self.stem_path(job_id, info["file"]).read_bytes()).decode(),
                "format": info["format"],
                "bytes": info["bytes"],
            }
            for name, info in stems.items()
        }


class _Sink:
    """A write-only file object whose bytes the zip generator hands out as they are written."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.buffer.extend(data)
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def iter_zip(files: Mapping[str, StemOpener]) -> Iterator[bytes]:
    """Stream a zip of `files` (archive name -> opener of its bytes) in bounded memory.

    Each source is opened when its turn comes and read 1 MiB at a time, so memory stays one
    chunk whatever the sizes, for local files and for S3 bodies alike. The stdlib writer supports
    unseekable outputs (it writes data descriptors), so this needs no extra package; stems are
    already audio, so they are stored, not deflated.
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, opener in files.items():
            with opener() as source, archive.open(name, "w", force_zip64=True) as entry:
                while chunk := source.read(_ZIP_CHUNK):
                    entry.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
