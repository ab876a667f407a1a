"""Peak memory over track length: musicsep against the Demucs CLI.

    python bench/memory.py                 # 1, 10, 60 min small model; 10 min full-size, both tools
    python bench/memory.py --minutes 1 10 --full-minutes 2 --skip-demucs   # quicker

Floors: musicsep's peak RSS at 60 min within 15% of its 10-min figure (small model);
with the full-size HTDemucs at 10 min, under 1.5 GB. The Demucs CLI's peak for the same file is
printed beside it (it holds the whole track and every stem in memory).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _fixtures import build_model_folder, build_track
from _measure import measure

THREADS = {"OMP_NUM_THREADS": "2"}


def musicsep(track: Path, repo: Path, model: str, out: Path):
    return measure(
        [sys.executable, "-m", "musicsep.cli", "separate", str(track), "-m", model, "-o", str(out), "--json"],
        env={"MUSICSEP_MODEL_REPO": str(repo), "MUSICSEP_OFFLINE": "1", "MUSICSEP_MAX_DURATION_S": "7200", **THREADS},
    )


def demucs_cli(track: Path, repo: Path, model: str, out: Path):
    return measure(
        [sys.executable, "-m", "demucs", "-n", model, "--repo", str(repo), "--shifts", "0", "-o", str(out), str(track)],
        env=THREADS,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--full-minutes", type=float, default=10)
    parser.add_argument("--skip-demucs", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="musicsep-bench-") as tmp:
        tmp = Path(tmp)
        repo = build_model_folder(tmp / "models")
        rows = []
        small = {}
        for minutes in args.minutes:
            track = build_track(tmp / f"track_{minutes:g}min.wav", minutes * 60)
            m = musicsep(track, repo, "small", tmp / "out")
            assert m.returncode == 0, m.stderr[-2000:]
            small[minutes] = m.peak_rss_mb
            rows.append(("musicsep", "small", minutes, m))
            track.unlink()
        track = build_track(tmp / "track_full.wav", args.full_minutes * 60)
        full = musicsep(track, repo, "htdemucs", tmp / "out")
        assert full.returncode == 0, full.stderr[-2000:]
        rows.append(("musicsep", "htdemucs", args.full_minutes, full))
        reference = None
        if not args.skip_demucs:
            reference = demucs_cli(track, repo, "htdemucs", tmp / "demucs_out")
            assert reference.returncode == 0, reference.stderr[-2000:]
            rows.append(("demucs CLI", "htdemucs", args.full_minutes, reference))
    print(f"{'tool':<11} {'model':<9} {'minutes':>7} {'peak RSS MB':>12} {'wall s':>8} {'cpu s':>8}")
    for tool, model, minutes, m in rows:
        print(f"{tool:<11} {model:<9} {minutes:>7g} {m.peak_rss_mb:>12.0f} {m.wall_s:>8.1f} {m.cpu_s:>8.1f}")
    verdicts = []
    if 10 in small and 60 in small:
        ratio = small[60] / small[10]
        verdicts.append((f"small model: peak RSS 60 min / 10 min = {ratio:.3f} (floor <= 1.15)", ratio <= 1.15))
    verdicts.append(
        (
            f"full-size htdemucs at {args.full_minutes:g} min: {full.peak_rss_mb:.0f} MB (floor < 1536)",
            full.peak_rss_mb < 1536,
        )
    )
    if reference is not None:
        verdicts.append(
            (
                f"musicsep / Demucs CLI peak RSS = {full.peak_rss_mb / reference.peak_rss_mb:.3f}",
                full.peak_rss_mb <= reference.peak_rss_mb,
            )
        )
    for text, ok in verdicts:
        print(("PASS " if ok else "FAIL ") + text)
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
