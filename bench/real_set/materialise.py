"""Bring the real dev set's audio from fetched repository mirrors into the cache, cut the excerpts.

    python bench/real_set/materialise.py                    # the items of manifest.json
    python bench/real_set/materialise.py --candidates       # every candidate of candidates.json

For each item: `git show COMMIT:PATH` from the mirror the search tool's `fetch` left under
/work/.mirror/OWNER+NAME/, a check of the bytes' sha256 against the manifest, then the excerpt
(start/duration) decoded and written as a 16-bit WAV at the file's own rate to
~/.cache/musicsep-realset/audio/ID.wav, which the estimators and `analysis_eval.py --real` read.
Nothing online is called: a missing mirror is reported with the `fetch` source that brings it,
and the script exits 2. Audio never enters the repository (licences vary).
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

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"
CANDIDATES = HERE / "candidates.json"
MIRRORS = Path("/work/.mirror")
CACHE = Path.home() / ".cache" / "musicsep-realset"
AUDIO = CACHE / "audio"


def audio_path(item: dict) -> Path:
    """Where an item's excerpt lies once materialised (what the estimators and evaluators read)."""
    return AUDIO / f"{item['id']}.wav"


def git_dir(repo: str, mirrors: Path = MIRRORS) -> Path | None:
    """The mirror's git directory: `fetch` leaves either OWNER+NAME/repo/.git or a bare OWNER+NAME/repo."""
    base = mirrors / repo.replace("/", "+") / "repo"
    for candidate in (base / ".git", base):
        if (candidate / "objects").is_dir():
            return candidate
    return None


def blob(repo: str, commit: str, path: str, mirrors: Path = MIRRORS) -> bytes:
    directory = git_dir(repo, mirrors)
    assert directory is not None, repo
    return subprocess.run(
        ["git", "--git-dir", str(directory), "show", f"{commit}:{path}"], capture_output=True, check=True
    ).stdout


def decode_stems_mix(data: bytes) -> tuple[np.ndarray, int]:
    """A Native Instruments STEMS mp4's first audio stream (the mixture as shipped), `(n, channels)`."""
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray() for frame in container.decode(stream)]
        samplerate = stream.rate
    return np.concatenate(chunks, axis=-1).T.astype(np.float32), samplerate


def cut(data: bytes, excerpt: dict | None, path: str = ""):
    """Decode the bytes (soundfile: WAV, FLAC, OGG/Opus, MP3; PyAV: STEMS mp4) and keep
    [start, start + duration)."""
    import soundfile

    if path.endswith(".stem.mp4"):
        audio, samplerate = decode_stems_mix(data)
        if excerpt:
            start = int(excerpt["start_s"] * samplerate)
            audio = audio[start : start + int(excerpt["duration_s"] * samplerate)]
        return audio, samplerate
    with soundfile.SoundFile(io.BytesIO(data)) as source:
        samplerate = source.samplerate
        if excerpt:
            source.seek(min(int(excerpt["start_s"] * samplerate), source.frames))
            audio = source.read(int(excerpt["duration_s"] * samplerate), dtype="float32", always_2d=True)
        else:
            audio = source.read(dtype="float32", always_2d=True)
    return audio, samplerate


def resolved_candidates(mirrors: Path = MIRRORS) -> list[dict]:
    """candidates.json's items with commit (the mirror's HEAD where none is pinned) and sha256."""
    items = []
    for item in json.loads(CANDIDATES.read_text())["candidates"]:
        directory = git_dir(item["repo"], mirrors)
        if directory is None:
            items.append(item)
            continue
        commit = (
            item["commit"]
            or subprocess.run(
                ["git", "--git-dir", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        digest = hashlib.sha256(blob(item["repo"], commit, item["path"], mirrors)).hexdigest()
        items.append({**item, "commit": commit, "sha256": digest})
    return items


def materialise(items: list[dict], mirrors: Path = MIRRORS, force: bool = False) -> list[str]:
    """Write every item's excerpt into the cache; return the problems (missing mirrors, bad sha256)."""
    import soundfile

    AUDIO.mkdir(parents=True, exist_ok=True)
    problems, missing = [], set()
    for item in items:
        target = audio_path(item)
        if target.exists() and not force:
            continue
        if git_dir(item["repo"], mirrors) is None:
            missing.add(item["repo"])
            continue
        data = blob(item["repo"], item["commit"], item["path"], mirrors)
        digest = hashlib.sha256(data).hexdigest()
        if item.get("sha256") and digest != item["sha256"]:
            problems.append(f"{item['id']}: sha256 {digest} != manifest {item['sha256']}")
            continue
        audio, samplerate = cut(data, item.get("excerpt"), item["path"])
        soundfile.write(target, audio, samplerate, subtype="PCM_16")
    if missing:
        problems.append("mirrors missing; bring them with the search tool's fetch:")
        problems.extend(f"  fetch github:{repo}" for repo in sorted(missing))
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--candidates", action="store_true", help="every candidate of candidates.json")
    parser.add_argument("--mirrors", type=Path, default=MIRRORS)
    parser.add_argument("--force", action="store_true", help="cut again even where the WAV exists")
    args = parser.parse_args()
    if args.candidates:
        items = resolved_candidates(args.mirrors)
    else:
        items = json.loads(args.manifest.read_text())["items"]
    problems = materialise(items, args.mirrors, args.force)
    for line in problems:
        print(line)
    print(f"{len(items)} items, audio in {AUDIO}")
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
