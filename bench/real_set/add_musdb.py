"""Add the MUSDB18 7-second previews of one public repository to candidates.json.

    python bench/real_set/add_musdb.py

skimura1/VocalExractionUnet commits the 150 previews of MUSDB18 (real songs: stems recorded and
mixed by people) as Native Instruments STEMS mp4. They carry no tempo or key annotation, so their
labels come from the estimators' agreement (build_manifest.py). What they do carry is the drums
stem: `has_drums` is decided from it (drums stem RMS within 30 dB of the mixture's: drums), not
by ear. Genre and licence from sigsep/website's tracklist.csv. The two previews issue 18 holds
out (Music Delta - 80s Rock; The Easton Ellises - Falcon 69, the track inside the stempeg wheel)
are never decoded.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from materialise import CANDIDATES, blob, git_dir  # noqa: E402

REPO, COMMIT = "skimura1/VocalExractionUnet", "02a669958fda94ed0915cbda1a31f97b57cb2e50"
TRACKLIST = ("sigsep/website", "b98277bfafa9fe1bb850e88b69232b803918c0ee", "content/datasets/assets/tracklist.csv")
HELD_OUT = ("Music Delta - 80s Rock", "The Easton Ellises - Falcon 69")
DRUMS_DB = -30.0


def stream(data: bytes, index: int) -> np.ndarray:
    import av

    with av.open(io.BytesIO(data)) as container:
        chunks = [frame.to_ndarray() for frame in container.decode(container.streams.audio[index])]
    return np.concatenate(chunks, axis=-1).astype(np.float64)


def drums_db(data: bytes) -> float:
    """The drums stem's RMS over the sum of the four stems', dB (streams 1-4: drums, bass, other, vocals)."""
    stems = [stream(data, index) for index in (1, 2, 3, 4)]
    n = min(s.shape[-1] for s in stems)
    mix = sum(s[..., :n] for s in stems)
    rms = lambda x: float(np.sqrt(np.mean(x**2)) + 1e-12)  # noqa: E731
    return float(20 * np.log10(rms(stems[0][..., :n]) / rms(mix)))


def main() -> int:
    directory = git_dir(REPO)
    if directory is None or git_dir(TRACKLIST[0]) is None:
        print(f"fetch github:{REPO} and github:{TRACKLIST[0]} first")
        return 2
    tracks = {row["Track Name"]: row for row in csv.DictReader(io.StringIO(blob(*TRACKLIST).decode()))}
    listing = subprocess.run(
        ["git", "--git-dir", str(directory), "ls-tree", "-r", "--name-only", COMMIT, "musdb/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    candidates = json.loads(CANDIDATES.read_text())
    known = {c["id"] for c in candidates["candidates"]}
    for path in sorted(p for p in listing if p.endswith(".stem.mp4")):
        title = Path(path).name.removesuffix(".stem.mp4")
        item_id = "musdb_" + "".join(ch if ch.isalnum() else "_" for ch in title.lower()).strip("_")
        if title in HELD_OUT or item_id in known:
            continue
        level = drums_db(blob(REPO, COMMIT, path))
        row = tracks.get(title, {})
        candidates["candidates"].append(
            {
                "id": item_id,
                "repo": REPO,
                "path": path,
                "commit": COMMIT,
                "excerpt": None,
                "genre": row.get("Genre", "unknown"),
                "description": f"MUSDB18 7 s preview: {title} ({row.get('Source', '?')}; {path.split('/')[1]} split)",
                "has_drums": bool(level > DRUMS_DB),
                "drums_how": f"MUSDB drums stem at {level:.1f} dB re the stems' sum (drums above {DRUMS_DB:.0f} dB)",
                "licence": f"{row.get('License', 'unknown')} (sigsep/website {TRACKLIST[1][:7]} {TRACKLIST[2]})",
                "tempo": None,
                "tempo_source": None,
                "tempo_level": None,
                "key": None,
                "key_source": None,
            }
        )
        print(f"{item_id:<60} {row.get('Genre', '?'):<18} drums {level:6.1f} dB")
    CANDIDATES.write_text(json.dumps(candidates, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
