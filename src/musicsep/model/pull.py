"""`musicsep models pull NAME` for the UVR / MSST families: the catalog's files into the model folder.

Files go into `MUSICSEP_MODEL_REPO` under the names UVR and audio-separator use, so the folder stays
usable by those tools too. Each file is downloaded to `<name>.part` and renamed when complete (an
interrupted pull leaves no file that looks whole), checked against its published sha256 where the
catalog has one, and skipped when already there. `MUSICSEP_MODEL_DOWNLOAD_URL` replaces every
source with `<that URL>/<file name>` (a mirror, or a local server in tests).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from musicsep.model.catalog import ModelInfo
from musicsep.model.errors import ModelUnavailable

#: Replaces every download source: `<URL>/<file name>`.
DOWNLOAD_URL_ENV = "MUSICSEP_MODEL_DOWNLOAD_URL"
_BLOCK = 1 << 20


def sources(info: ModelInfo, base_url: str | None = None) -> dict[str, str]:
    """file name -> URL of every file the model needs."""
    base_url = base_url if base_url is not None else os.environ.get(DOWNLOAD_URL_ENV)
    if base_url:
        return {name: f"{base_url.rstrip('/')}/{name}" for name in info.downloads}
    return dict(info.downloads)


def pull_files(info: ModelInfo, folder: Path, *, base_url: str | None = None, progress: bool = True) -> list[str]:
    """Download what is missing of `info`'s files into `folder`; returns the names downloaded."""
    if not info.downloads:
        raise ModelUnavailable(f"model '{info.name}' has no download source in the catalog")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fetched = []
    for name, url in sources(info, base_url).items():
        if (folder / name).is_file():
            continue
        _download(url, folder / name, info.sha256.get(name), progress)
        fetched.append(name)
    return fetched


def _download(url: str, target: Path, sha256: str | None, progress: bool) -> None:
    import httpx
    from tqdm import tqdm

    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=httpx.Timeout(30.0, read=300.0)) as response:
            if response.status_code != 200:
                raise ModelUnavailable(f"downloading {target.name} failed: HTTP {response.status_code} from {url}")
            total = int(response.headers.get("content-length") or 0) or None
            with (
                open(partial, "wb") as out,
                tqdm(
                    total=total, unit="B", unit_scale=True, desc=target.name, file=sys.stderr, disable=not progress
                ) as bar,
            ):
                for block in response.iter_bytes(_BLOCK):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise ModelUnavailable(f"downloading {target.name} failed ({type(exc).__name__}) from {url}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        partial.unlink(missing_ok=True)
        raise ModelUnavailable(f"{target.name} from {url} does not match its published sha256; nothing was kept")
    partial.replace(target)
