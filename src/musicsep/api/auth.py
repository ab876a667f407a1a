"""Authentication, off unless `MUSICSEP_API_KEYS` or `MUSICSEP_BASIC_AUTH` is set.

API keys come as `Authorization: Bearer <key>` or `X-API-Key: <key>`; Basic as `user:password`.
Every configured secret is compared with `hmac.compare_digest`, and all of them are always
compared, so the time taken says nothing about which one nearly matched. A browser cannot put
headers on an EventSource, so job creation also returns a short-lived per-job token that only
opens that job's event stream (checked in the events route).
"""

from __future__ import annotations

import base64
import hmac

from fastapi import Request

from musicsep.api.errors import ApiError
from musicsep.config import Settings


def _matches_any(candidate: str, secrets: list[str]) -> bool:
    offered = candidate.encode()
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(offered, secret.encode())
    return found


def has_valid_credentials(request: Request, settings: Settings) -> bool:
    keys = [key.get_secret_value() for key in settings.api_keys]
    basics = [entry.get_secret_value() for entry in settings.basic_auth]
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and keys:
        return _matches_any(value, keys)
    if scheme.lower() == "basic" and basics:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except ValueError:
            # binascii.Error (bad base64), UnicodeDecodeError, and the plain ValueError that
            # b64decode raises for non-ASCII text ('²'): all of them are wrong credentials.
            return False
        return _matches_any(decoded, basics)
    api_key = request.headers.get("x-api-key")
    if api_key is not None and keys:
        return _matches_any(api_key, keys)
    return False


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "this server needs an API key (Authorization: Bearer or X-API-Key) or Basic credentials",
        headers={"WWW-Authenticate": 'Bearer realm="musicsep", Basic realm="musicsep"'},
    )


async def require_auth(request: Request) -> None:
    """Route dependency: passes when auth is off or the request carries valid credentials."""
    settings: Settings = request.app.state.settings
    if settings.auth_enabled and not has_valid_credentials(request, settings):
        raise unauthorized()
