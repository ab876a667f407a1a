"""Signatures that let a browser fetch a job's files and follow its events without headers.

Signed URLs and stream tokens are HMAC-SHA256 over (purpose, job, name, expiry), length-prefixed,
with one server key; `hmac.compare_digest` compares them in constant time. The key lives in the
data dir (or MUSICSEP_SIGNING_KEY), so links survive a restart and every node of a cluster that
shares the key accepts the links of the others.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

#: An expiry as links carry it: ASCII digits only. `str.isdigit()` and `int()` also take '²' or
#: '٣' (the first then fails in int(): a 500), and pydantic's int takes '+5', ' 5', '5.0', '5_0'.
_EXPIRY = re.compile(r"[0-9]{1,15}")

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
