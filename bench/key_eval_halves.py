"""The key estimate on the real dev set's two fixed halves and the synthetic set, in one run.

    python bench/key_eval_halves.py                      # real (bench/real_set) + synthetic (96 clips)
    python bench/key_eval_halves.py --items              # also one line per real item
    python bench/key_eval_halves.py --baseline REV       # also REV's key.py on the same features

Why a script of its own: bench/analysis_eval.py runs the whole analysis (decode, tempo, key,
loudness) of every item on every run; a change to the key only needs the key. The features
(`features.FeatureStream`'s summed and per-segment spectra, exactly what `analyze._key_of`
receives) are computed once per item and cached under ~/.cache/musicsep-key-eval, keyed by
features.py's content, so a run of key.py over the 86 real and 96 synthetic items takes seconds.

Why halves: the profile, the weights and each term are chosen on 86 items, too few to trust one
figure. Each real item falls into half A or B by the parity of its id's SHA-1, fixed before any
change was tried; a change is kept only if it helps (or does not hurt) both halves.

Every real miss is printed with its error class against the label: `dominant` (ours a fifth
above: MIREX 0.5), `subdominant` (a fifth below: 0), `relative` (0.3), `parallel` (0.2), `other`.
With `--baseline` the revision's key.py (git show REV:...) is imported in place of today's and
scored on the same features, so the table shows the change and its base side by side.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path
from types import ModuleType

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

CACHE = Path.home() / ".cache" / "musicsep-key-eval"
SYNTH_RATE = 22050
KEY_MODULE = "src/musicsep/model/analysis/key.py"


def _features_digest() -> str:
    source = (REPO / "src/musicsep/model/analysis/features.py").read_bytes()
    return hashlib.sha1(source).hexdigest()[:10]


def half(item_id: str) -> str:
    """'A' or 'B', fixed by the id alone (parity of its SHA-1's first byte)."""
    return "AB"[hashlib.sha1(item_id.encode()).digest()[0] % 2]


def _stream_features(blocks, samplerate: int) -> dict:
    """What analyze._key_of receives, from (channels, n) blocks, as analyze_blocks computes it."""
    from musicsep.model.analysis import features as feat
    from musicsep.model.analysis.analyze import _as_2d, _mono

    stream, frames = feat.FeatureStream(samplerate), 0
    for raw in blocks:
        block = _as_2d(raw)
        frames += block.shape[1]
        stream.add(_mono(block))
    features = stream.finish()
    return {
        "spectrum": features.spectrum,
        "segments": features.segments,
        "rms": features.rms,
        "duration_s": frames / samplerate,
    }


def _real_features(item: dict) -> tuple[str, Path]:
    from musicsep.model.analysis.analyze import analysis_samplerate
    from musicsep.model.audio import decode_blocks

    target = CACHE / _features_digest() / f"real-{item['id']}.npz"
    if not target.exists():
        path = Path(item["wav"])
        rate = analysis_samplerate(path)
        np.savez(target, **_stream_features(decode_blocks(path, samplerate=rate, channels=2), rate))
    return item["id"], target


def _synth_features(spec) -> tuple[str, Path]:
    from _synth_music import render

    digest = hashlib.sha1(repr(spec).encode()).hexdigest()[:10]
    target = CACHE / _features_digest() / f"synth-{spec.index:03d}-{digest}.npz"
    if not target.exists():
        mix = render(spec, SYNTH_RATE)["mix"]
        blocks = (mix[:, start : start + 65536] for start in range(0, mix.shape[1], 65536))
        np.savez(target, **_stream_features(blocks, SYNTH_RATE))
    return f"synth-{spec.index:03d}", target


def _key_module(revision: str | None) -> ModuleType:
    """Today's key.py, or REV's (its source from git, loaded under a name of its own)."""
    if revision is None:
        from musicsep.model.analysis import key

        return key
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{revision}:{KEY_MODULE}"], capture_output=True, text=True, check=True
    ).stdout
    path = CACHE / f"key_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"key_{revision}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def estimate(module: ModuleType, cached: Path) -> tuple[str | None, float | None, str | None, float]:
    """(label, confidence, runner-up, CPU seconds) through the module's estimate, with analyze's gates."""
    from musicsep.model.analysis import features as feat
    from musicsep.model.analysis.analyze import SILENCE_RMS
    from musicsep.model.analysis.tempo import MIN_SECONDS

    data = np.load(cached)
    spectrum, segments = data["spectrum"], data["segments"]
    if float(data["duration_s"]) < MIN_SECONDS or float(data["rms"]) < SILENCE_RMS:
        return None, None, None, 0.0
    start = time.process_time()
    if module.tonalness(spectrum[: feat.PITCH_BINS], feat.ANALYSIS_RATE, feat.N_FFT) < module.MIN_TONALNESS:
        return None, None, None, time.process_time() - start
    chroma = module.segment_chroma(spectrum, segments, feat.ANALYSIS_RATE, feat.N_FFT)
    result = module.estimate_key(chroma)
    return result.label, result.confidence, result.runner_up, time.process_time() - start


def error_class(label: str | None, reference: str) -> str:
    import mir_eval

    if label is None:
        return "none"
    (tonic, mode), (ref_tonic, ref_mode) = (mir_eval.key.split_key_string(k) for k in (label, reference))
    step = (tonic - ref_tonic) % 12
    if step == 0 and mode == ref_mode:
        return "right"
    if mode == ref_mode and step == 7:
        return "dominant"
    if mode == ref_mode and step == 5:
        return "subdominant"
    if mode != ref_mode and step == (9 if ref_mode == "major" else 3):
        return "relative"
    if mode != ref_mode and step == 0:
        return "parallel"
    return "other"


def mirex(label: str | None, reference: str) -> float:
    import mir_eval

    return 0.0 if label is None else float(mir_eval.key.weighted_score(reference, label))


def _summary(rows: list[dict]) -> str:
    def score(part: list[dict]) -> str:
        return f"{np.mean([r['score'] for r in part]):.3f} ({len(part)})" if part else "-"

    halves = [score([r for r in rows if r["half"] == h]) for h in "AB"]
    return f"{score(rows):>12}{halves[0]:>12}{halves[1]:>12}"


def _confidence_line(rows: list[dict]) -> str:
    right = [r["confidence"] for r in rows if r["class"] == "right" and r["confidence"] is not None]
    wrong = [r["confidence"] for r in rows if r["class"] != "right" and r["confidence"] is not None]
    # How often a right answer is more confident than a wrong one (ROC AUC; 0.5 = says nothing).
    pairs = [(a > b) + 0.5 * (a == b) for a in right for b in wrong]
    return (
        f"median confidence right {np.median(right) if right else float('nan'):.3f}, "
        f"wrong {np.median(wrong) if wrong else float('nan'):.3f}, "
        f"AUC {np.mean(pairs) if pairs else float('nan'):.2f}; "
        f"runner-up is the label on {sum(r['runner_up'] == r['reference'] for r in rows)} of "
        f"{sum(r['class'] != 'right' for r in rows)} misses"
    )


def evaluate(module: ModuleType, cases: list[tuple[str, str, Path]]) -> list[dict]:
    rows = []
    for item_id, reference, cached in cases:
        label, confidence, runner_up, cpu = estimate(module, cached)
        rows.append(
            {
                "id": item_id,
                "half": half(item_id),
                "reference": reference,
                "label": label,
                "confidence": confidence,
                "runner_up": runner_up,
                "cpu": cpu,
                "score": mirex(label, reference),
                "class": error_class(label, reference),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=HERE / "real_set" / "manifest.json")
    parser.add_argument("--count", type=int, default=96, help="synthetic clips (bench/analysis_eval.py's set)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--items", action="store_true", help="one line per real item")
    parser.add_argument("--baseline", metavar="REV", help="also score REV's key.py on the same features")
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args()

    import _real_set_eval
    from _synth_music import make_specs

    (CACHE / _features_digest()).mkdir(parents=True, exist_ok=True)
    items = [i for i in _real_set_eval.load_items(args.manifest) if i["key"] is not None]
    specs = make_specs(args.count, seed=args.seed)
    with Pool(args.jobs) as pool:
        real_paths = dict(pool.map(_real_features, items))
        synth_paths = dict(pool.map(_synth_features, specs))
    real_cases = [(i["id"], i["key"], real_paths[i["id"]]) for i in items]
    synth_cases = [(f"synth-{s.index:03d}", s.key_label, synth_paths[f"synth-{s.index:03d}"]) for s in specs]

    revisions = ([args.baseline] if args.baseline else []) + [None]
    print(f"real key items {len(real_cases)} (halves by id hash), synthetic {len(synth_cases)} (seed {args.seed})")
    print(f"{'key.py':<14}{'set':<7}{'all':>12}{'half A':>12}{'half B':>12}   classes of the misses")
    dump = {}
    for revision in revisions:
        module = _key_module(revision)
        name = revision or "worktree"
        for set_name, cases in (("real", real_cases), ("synth", synth_cases)):
            rows = evaluate(module, cases)
            dump[f"{name}:{set_name}"] = rows
            classes = Counter(r["class"] for r in rows if r["class"] != "right")
            print(f"{name:<14}{set_name:<7}{_summary(rows)}   {dict(classes.most_common())}")
            print(f"{'':<21}{_confidence_line(rows)}; key CPU {sum(r['cpu'] for r in rows):.2f} s")
    if args.items:
        rows = dump["worktree:real"]
        print("\nreal items (worktree): half, label, estimate, class, confidence, runner-up")
        for r in sorted(rows, key=lambda r: (r["class"], r["id"])):
            print(
                f"  {r['half']} {r['id']:<44}{r['reference']:<10}{r['label'] or '-':<10}{r['class']:<12}"
                f"{r['confidence'] if r['confidence'] is not None else '-':<7} {r['runner_up']}"
            )
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
