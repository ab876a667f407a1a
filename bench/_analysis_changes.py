"""What each change to the analysis did, on the real dev set and the synthetic set, in one run.

    python bench/_analysis_changes.py REV... [--real bench/real_set/manifest.json] [--speed]

Each REV is a git revision (or `WORKTREE`, the files as they are now). Its `src/musicsep` is
exported with `git archive` to a temporary directory and run in a child process of its own, so
every revision analyses the very same clips (synthetic clips rendered once and cached under
~/.cache/musicsep-analysis-methods, real files as materialised by bench/real_set) on the same
machine at the same time. Prints per revision: tempo Accuracy1 / Accuracy2 (4 %), MIREX key
score on each set, the share of drumless real items given a tempo and their Accuracy2, and with
`--speed` the best wall-clock and CPU seconds of `analyze_file` on one 4-minute track (the
revisions interleaved, so a load spike hits them all). The table of changes in docs/analysis.md
comes from here; bench/analysis_eval.py stays the acceptance bench (musicsep against the seed
recipe).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _synth_music import make_specs, render  # noqa: E402

CACHE = Path.home() / ".cache" / "musicsep-analysis-methods"
SYNTH_RATE = 22050
TOLERANCE = 0.04

# Run in the child, against the revision's package: one JSON line per item.
_CHILD = r"""
import json, sys, time
import numpy as np
from musicsep.model.analysis import analyze_blocks, analyze_file

def blocks(audio, size=65536):
    for start in range(0, audio.shape[-1], size):
        yield audio[None, start:start + size]

for line in sys.stdin:
    item = json.loads(line)
    if item.get("npy"):
        result = analyze_blocks(blocks(np.load(item["npy"])), item["samplerate"])
    else:
        result = analyze_file(item["path"])
    print(json.dumps({"id": item["id"], "bpm": result.tempo.bpm, "tempo_confidence": result.tempo.confidence,
                      "key": result.key.label, "key_confidence": result.key.confidence}), flush=True)
"""

_SPEED_CHILD = r"""
import json, sys, time
from musicsep.model.analysis import analyze_file
analyze_file(sys.argv[1])
start, cpu = time.perf_counter(), time.process_time()
analyze_file(sys.argv[1])
print(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}))
"""


def export(revision: str, into: Path) -> Path:
    """The revision's src/ under `into` (WORKTREE: the working tree's own src/)."""
    if revision == "WORKTREE":
        return REPO / "src"
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", revision, "src/musicsep"], check=True, capture_output=True
    ).stdout
    target = into / revision.replace("/", "_")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(target, filter="data")
    return target / "src"


def synthetic_items(count: int, seed: int) -> list[dict]:
    """The evaluation set of bench/analysis_eval.py, rendered once (mono mix) into the cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    items = []
    for spec in make_specs(count, seed=seed):
        path = CACHE / f"synth-{seed}-{count}-{spec.index:03d}.npy"
        if not path.exists():
            np.save(path, render(spec, SYNTH_RATE)["mix"].mean(axis=0))
        items.append(
            {
                "id": f"synth-{spec.index}",
                "npy": str(path),
                "samplerate": SYNTH_RATE,
                "bpm": spec.bpm,
                "key": spec.key_label,
                "drumless": spec.drums is None,
            }
        )
    return items


def real_items(manifest: Path) -> list[dict]:
    """Items of the real dev set whose audio has been materialised (bench/real_set/materialise.py)."""
    sys.path.insert(0, str(manifest.parent))
    from materialise import AUDIO  # realset's: where materialise.py writes each item's excerpt

    items = []
    for entry in json.loads(manifest.read_text())["items"]:
        path = AUDIO / f"{entry['id']}.wav"
        if not path.exists():
            continue
        items.append(
            {
                "id": entry["id"],
                "path": str(path),
                "bpm": entry.get("tempo"),
                "key": entry.get("key"),
                "drumless": not entry.get("has_drums", True),
            }
        )
    return items


def run_revision(src: Path, items: list[dict]) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    feed = "".join(json.dumps(item) + "\n" for item in items)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], input=feed, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"revision at {src} failed:\n{out.stderr[-3000:]}")
    return {row["id"]: row for row in map(json.loads, out.stdout.splitlines())}


def accuracy1(estimate: float | None, reference: float) -> bool:
    return estimate is not None and abs(estimate / reference - 1.0) <= TOLERANCE


def accuracy2(estimate: float | None, reference: float) -> bool:
    return any(accuracy1(estimate, reference * k) for k in (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0))


def key_score(estimate: str | None, reference: str) -> float:
    import mir_eval

    return 0.0 if estimate is None else float(mir_eval.key.weighted_score(reference, estimate))


def figures(items: list[dict], rows: dict[str, dict]) -> dict[str, float]:
    tempo = [i for i in items if i["bpm"]]
    keyed = [i for i in items if i["key"]]
    drumless = [i for i in tempo if i["drumless"]]
    given = [i for i in drumless if rows[i["id"]]["bpm"] is not None]
    out = {
        "acc1": float(np.mean([accuracy1(rows[i["id"]]["bpm"], i["bpm"]) for i in tempo])) if tempo else np.nan,
        "acc2": float(np.mean([accuracy2(rows[i["id"]]["bpm"], i["bpm"]) for i in tempo])) if tempo else np.nan,
        "mirex": float(np.mean([key_score(rows[i["id"]]["key"], i["key"]) for i in keyed])) if keyed else np.nan,
        "drumless_given": len(given) / len(drumless) if drumless else np.nan,
        "drumless_acc2": float(np.mean([accuracy2(rows[i["id"]]["bpm"], i["bpm"]) for i in drumless]))
        if drumless
        else np.nan,
    }
    out["counts"] = f"{len(tempo)} tempo, {len(keyed)} key, {len(drumless)} drumless"
    return out


def speed(sources: dict[str, Path], rounds: int) -> dict[str, tuple[float, float]]:
    import soundfile

    spec = make_specs(24, seed=99)[7]
    best = {name: (float("inf"), float("inf")) for name in sources}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "four_minutes.wav"
        soundfile.write(path, render(spec, 44100, 240.0)["mix"].T, 44100, subtype="PCM_16")
        for _ in range(rounds):
            for name, src in sources.items():
                env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
                out = subprocess.run(
                    [sys.executable, "-c", _SPEED_CHILD, str(path)], env=env, capture_output=True, text=True, check=True
                )
                row = json.loads(out.stdout.splitlines()[-1])
                best[name] = (min(best[name][0], row["wall"]), min(best[name][1], row["cpu"]))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revisions", nargs="+", help="git revisions, or WORKTREE")
    parser.add_argument("--real", type=Path, help="the real dev set's manifest")
    parser.add_argument("--count", type=int, default=96)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--speed", action="store_true", help="also time analyze_file on a 4-minute track")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (best of)")
    args = parser.parse_args()
    sets = {"synthetic": synthetic_items(args.count, args.seed)}
    if args.real:
        sets = {"real": real_items(args.real), **sets}
    with tempfile.TemporaryDirectory() as tmp:
        sources = {rev: export(rev, Path(tmp)) for rev in args.revisions}
        header = f"{'revision':<14}{'set':<11}{'Acc1':>7}{'Acc2':>7}{'MIREX':>7}{'drumless given':>16}{'Acc2':>11}"
        lines = [header]
        per_item: dict[str, dict[str, dict]] = {}
        for rev, src in sources.items():
            for name, items in sets.items():
                rows = run_revision(src, items)
                per_item[f"{rev} {name}"] = rows
                f = figures(items, rows)
                lines.append(
                    f"{rev[:13]:<14}{name:<11}{f['acc1']:>7.3f}{f['acc2']:>7.3f}{f['mirex']:>7.3f}"
                    f"{f['drumless_given']:>16.3f}{f['drumless_acc2']:>11.3f}   ({f['counts']})"
                )
                print(lines[-1], flush=True)
        print("\n" + "\n".join(lines))
        if args.real:
            print("\nreal items (reference | estimate per revision):")
            for item in sets["real"]:
                cells = [
                    f"{per_item[f'{rev} real'][item['id']]['bpm']}/{per_item[f'{rev} real'][item['id']]['key']}"
                    for rev in sources
                ]
                print(f"  {item['id']:<34}{item['bpm']!s:>8} {item['key']!s:<10}| " + " | ".join(cells))
        if args.speed:
            timing = speed(sources, args.rounds)
            print(f"\nanalyze_file on a 4-minute 44.1 kHz stereo WAV, best of {args.rounds} (wall / CPU):")
            first = next(iter(timing.values()))
            for rev, (wall, cpu) in timing.items():
                print(f"  {rev[:13]:<14}{wall:.3f} s / {cpu:.3f} s   x{wall / first[0]:.2f} / x{cpu / first[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
