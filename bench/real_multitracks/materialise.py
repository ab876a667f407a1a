"""Rebuild the real multitracks of manifest.json from a fetched mirror into the cache.

    python bench/real_multitracks/materialise.py                 # mirror found under /work/.mirror
    python bench/real_multitracks/materialise.py --mirror PATH   # a git directory holding the commit

The audio is never committed (licences: research use only, or CC BY-NC-SA); this script reads each
item's bytes out of the mirror's git objects at the manifest's commit (nothing online), checks their
sha256, decodes the four stems (PyAV, already a musicsep dependency: STEMS files are AAC streams in
one mp4) and stores them as float32 `(4, 2, n)` arrays in ~/.cache/musicsep-dsp-real/. The mixture
is not stored: the bench scores the sum of the stems, so the references add up to the input exactly.
When the mirror is missing it prints the `fetch` source to bring it and exits non-zero.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

MANIFEST = Path(__file__).resolve().parent / "manifest.json"
CACHE = Path.home() / ".cache" / "musicsep-dsp-real" / "musdb18-7s"
MIRRORS = Path("/work/.mirror")
#: Stream order of a MUSDB18 STEMS file: 0 is the mixture, then these.
STEM_STREAMS = {"drums": 1, "bass": 2, "other": 3, "vocals": 4}


def cached_path(item: dict) -> Path:
    return CACHE / f"{item['id']}.npy"


def load(item: dict) -> dict[str, np.ndarray]:
    """One materialised item's stems, name -> float32 `(2, n)`."""
    stems = np.load(cached_path(item))
    return dict(zip(STEM_STREAMS, stems, strict=True))


def decode_stems(data: bytes) -> np.ndarray:
    """The four stems of a STEMS mp4 as float32 `(4, 2, n)`, cut to the shortest stream."""
    import av

    decoded = []
    for stream_index in STEM_STREAMS.values():
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.audio[stream_index]
            chunks = [frame.to_ndarray() for frame in container.decode(stream)]
        decoded.append(np.concatenate(chunks, axis=-1).astype(np.float32))
    n = min(d.shape[-1] for d in decoded)
    return np.stack([d[:, :n] for d in decoded])


def default_mirror(repo: str) -> Path:
    return MIRRORS / repo.replace("/", "+") / "repo"


def materialise(manifest: dict, mirror: Path) -> int:
    """Decode every item not yet in the cache; returns the number of items that failed."""
    commit = manifest["source"]["commit"]
    CACHE.mkdir(parents=True, exist_ok=True)
    failures = 0
    for item in manifest["items"]:
        target = cached_path(item)
        if target.exists():
            continue
        data = subprocess.run(
            ["git", "--git-dir", str(mirror), "cat-file", "blob", f"{commit}:{item['path']}"],
            capture_output=True,
            check=True,
        ).stdout
        digest = hashlib.sha256(data).hexdigest()
        if digest != item["sha256"]:
            print(f"sha256 mismatch for {item['path']}: {digest}", file=sys.stderr)
            failures += 1
            continue
        np.save(target, decode_stems(data))
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, help="git directory of the source repository")
    args = parser.parse_args()
    manifest = json.loads(MANIFEST.read_text())
    mirror = args.mirror or default_mirror(manifest["source"]["repo"])
    if not mirror.exists():
        print(f"no mirror at {mirror}: bring it with fetch {manifest['source']['fetch']}", file=sys.stderr)
        return 2
    failures = materialise(manifest, mirror)
    print(f"{len(manifest['items']) - failures} of {len(manifest['items'])} items in {CACHE}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
