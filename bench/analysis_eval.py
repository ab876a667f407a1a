"""Evaluate musicsep's track analysis against the seed recipe on labelled synthetic music.

    python bench/analysis_eval.py            # 96 clips of 30 s, speed on a 4-minute track
    python bench/analysis_eval.py --quick    # 24 clips (all 24 keys), fewer timing runs
    python bench/analysis_eval.py --memory   # also: peak RSS analysing a 60-minute file
    python bench/analysis_eval.py --real bench/real_set/manifest.json   # real dev set + synthetic

Prints, for musicsep (mix), musicsep (stem-aware) and the seed recipe (librosa.beat.beat_track +
argmax of the mean chroma_cqt, read as a major key since it names no mode), measured in the same
run: tempo Accuracy1 (within 4 %), Accuracy2 (also x2, x1/2, x3, x1/3), the MIREX weighted key
score (mir_eval: 1 same, 0.5 fifth, 0.3 relative, 0.2 parallel), the key score of every profile
family, and seconds per 4-minute track. The clips come from bench/_synth_music.py; nothing is
written to the repository.

With `--real MANIFEST` the same run also analyses the real dev set (bench/real_set: recordings
by people, each label with its source; bench/_real_set_eval.py) and prints musicsep against the
seed recipe on both sets side by side, the drumless real items' tempo coverage and Accuracy2, the
figures on the published labels, the agreement labels and two fixed halves of the set apart, and
one line per real item; the speed runs are left out then unless `--speed` asks for them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _real_set_eval as _real
from _synth_music import PITCH_CLASSES, ClipSpec, make_specs, render

EVAL_RATE = 22050
TOLERANCE = 0.04


def _blocks(audio: np.ndarray, size: int = 65536) -> Iterator[np.ndarray]:
    for start in range(0, audio.shape[1], size):
        yield audio[:, start : start + size]


def seed_recipe(mono: np.ndarray, samplerate: int) -> tuple[float, str]:
    """The seeds' analysis: beat_track's tempo, argmax of the mean CQT chroma as the key."""
    import librosa

    tempo, _ = librosa.beat.beat_track(y=mono, sr=samplerate)
    chroma = librosa.feature.chroma_cqt(y=mono, sr=samplerate)
    return float(np.atleast_1d(tempo)[0]), f"{PITCH_CLASSES[int(chroma.mean(axis=1).argmax())]} major"


def evaluate_clip(spec: ClipSpec) -> dict:
    from musicsep.model.analysis import analyze_blocks, analyze_stems
    from musicsep.model.analysis import features as feat
    from musicsep.model.analysis.key import PROFILES, estimate_key, segment_chroma

    parts = render(spec, EVAL_RATE)
    mix = analyze_blocks(_blocks(parts["mix"]), EVAL_RATE)
    stems = analyze_stems(
        {name: _blocks(parts[name]) for name in ("drums", "bass", "other", "vocals")},
        samplerate=EVAL_RATE,
        mix=_blocks(parts["mix"]),
    )
    stream = feat.FeatureStream(EVAL_RATE)
    stream.add(parts["mix"].mean(axis=0))
    features = stream.finish()
    chroma = segment_chroma(features.spectrum, features.segments, feat.ANALYSIS_RATE, feat.N_FFT)
    profiles = {name: estimate_key(chroma, name).label for name in PROFILES}
    seed_bpm, seed_key = seed_recipe(parts["mix"].mean(axis=0), EVAL_RATE)
    return {
        "spec": spec,
        "mix": (mix.tempo.bpm, mix.key.label),
        "stems": (stems.tempo.bpm, stems.key.label),
        "seed": (seed_bpm, seed_key),
        "profiles": profiles,
    }


def accuracy1(estimate: float | None, reference: float) -> bool:
    return estimate is not None and abs(estimate / reference - 1.0) <= TOLERANCE


def accuracy2(estimate: float | None, reference: float) -> bool:
    return any(accuracy1(estimate, reference * k) for k in (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0))


def key_score(estimate: str | None, reference: str) -> float:
    import mir_eval

    return 0.0 if estimate is None else float(mir_eval.key.weighted_score(reference, estimate))


def print_accuracy(results: list[dict]) -> None:
    print(f"\n{len(results)} clips of 30 s, {EVAL_RATE} Hz")
    print(f"{'method':<22}{'Accuracy1':>10}{'Accuracy2':>10}{'MIREX key':>10}")
    for method in ("mix", "stems", "seed"):
        acc1 = np.mean([accuracy1(r[method][0], r["spec"].bpm) for r in results])
        acc2 = np.mean([accuracy2(r[method][0], r["spec"].bpm) for r in results])
        mirex = np.mean([key_score(r[method][1], r["spec"].key_label) for r in results])
        name = {"mix": "musicsep (mix)", "stems": "musicsep (stem-aware)", "seed": "seed recipe"}[method]
        print(f"{name:<22}{acc1:>10.3f}{acc2:>10.3f}{mirex:>10.3f}")
    print("\nkey profile families (MIREX score, mix, same chroma and cadence evidence):")
    scores = {
        name: np.mean([key_score(r["profiles"][name], r["spec"].key_label) for r in results])
        for name in results[0]["profiles"]
    }
    for name, score in sorted(scores.items(), key=lambda item: -item[1]):
        print(f"  {name:<24}{score:.3f}")
    misses = [r for r in results if not accuracy1(r["mix"][0], r["spec"].bpm)]
    print(f"\nmix tempo misses ({len(misses)}):")
    for r in misses:
        s = r["spec"]
        print(f"  #{s.index} ref {s.bpm} est {r['mix'][0]} drums={s.drums} comping={s.comping} bass={s.bass_line}")


def print_real(items: list[dict], real_results: dict[str, dict], synthetic: list[dict]) -> None:
    """musicsep against the seed recipe on the real dev set and the synthetic set, side by side,
    then on the real set's published labels and agreement labels apart."""
    scores = _real.real_scores(items, real_results, accuracy1, accuracy2, key_score)
    synth = {
        method: (
            np.mean([accuracy1(r[method][0], r["spec"].bpm) for r in synthetic]),
            np.mean([accuracy2(r[method][0], r["spec"].bpm) for r in synthetic]),
            np.mean([key_score(r[method][1], r["spec"].key_label) for r in synthetic]),
        )
        for method in ("mix", "seed")
    }
    print(f"\n{_real.describe(items)}; synthetic: {len(synthetic)} clips")
    print(f"{'':<16}{'real':>30}   {'synthetic':>28}")
    header = f"{'Accuracy1':>10}{'Accuracy2':>10}{'MIREX key':>10}"
    print(f"{'method':<16}" + header * 2 + f"{'drumless: tempo given':>24}{'Acc2':>6}")
    for method, synth_name, name in (("musicsep", "mix", "musicsep"), ("seed", "seed", "seed recipe")):
        real = scores[method]
        print(
            f"{name:<16}{real['acc1']:>10.3f}{real['acc2']:>10.3f}{real['mirex']:>10.3f}"
            + "".join(f"{value:>10.3f}" for value in synth[synth_name])
            + f"{real['drumless_coverage']:>24.3f}{real['drumless_acc2']:>6.3f}"
        )
    print(
        "musicsep - seed  "
        + "".join(f"{scores['musicsep'][k] - scores['seed'][k]:>+10.3f}" for k in ("acc1", "acc2", "mirex"))
        + "".join(f"{a - b:>+10.3f}" for a, b in zip(synth["mix"], synth["seed"], strict=True))
    )
    print(
        "\nreal set by label source (agreement labels: Essentia + madmom; librosa, the seed's tempo, does not vote)"
        " and by fixed half (A/B: parity of the first byte of the item id's SHA-1):"
    )
    print(f"  {'labels':<18}{'method':<13}{'tempo n':>8}{'Acc1':>7}{'Acc2':>7}{'key n':>7}{'MIREX':>7}")
    for subset in _real.SUBSETS:
        part = _real.real_scores(items, real_results, accuracy1, accuracy2, key_score, subset)
        for method, name in (("musicsep", "musicsep"), ("seed", "seed recipe")):
            r = part[method]
            print(
                f"  {subset:<18}{name:<13}{r['tempo_n']:>8}{r['acc1']:>7.3f}{r['acc2']:>7.3f}"
                f"{r['key_n']:>7}{r['mirex']:>7.3f}"
            )
    _real.print_items(items, real_results, accuracy1, accuracy2, key_score)


def _time_best(function, runs: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds (all threads of this process) over `runs` calls. On a
    shared box the CPU time is the steadier figure: other processes' load does not enter it."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def measure_speed(runs: int) -> None:
    import librosa
    import soundfile

    from musicsep.model.analysis import analyze_blocks, analyze_file
    from musicsep.model.audio import decode_blocks

    spec = make_specs(24, seed=99)[7]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "four_minutes.wav"
        soundfile.write(path, render(spec, 44100, 240.0)["mix"].T, 44100, subtype="PCM_16")

        def seed() -> None:
            mono, samplerate = librosa.load(path, sr=EVAL_RATE)
            seed_recipe(mono, samplerate)

        def ours() -> None:
            analyze_file(path)

        decoded = list(decode_blocks(path, samplerate=44100))

        def ours_on_decoded() -> None:
            analyze_blocks(decoded, 44100)

        ours(), seed(), ours_on_decoded()  # warm up: imports, numba compilation, caches
        ours_t, seed_t = _time_best(ours, runs), _time_best(seed, runs)
        shared_t = _time_best(ours_on_decoded, runs)
    print(f"\nseconds per 4-minute track (44.1 kHz stereo WAV, best of {runs}; wall-clock / CPU):")
    print(f"  musicsep analyze_file (decode+tempo+beats+key+loudness+duration): {ours_t[0]:.3f} s / {ours_t[1]:.3f} s")
    print(f"  seed recipe (librosa.load 22.05 kHz + beat_track + chroma_cqt):    {seed_t[0]:.3f} s / {seed_t[1]:.3f} s")
    print(f"  speed-up: {seed_t[0] / ours_t[0]:.2f}x wall-clock, {seed_t[1] / ours_t[1]:.2f}x CPU")
    print(
        "  musicsep analyze_blocks on blocks already decoded (the job pipeline shares separation's "
        f"decode): {shared_t[0]:.3f} s / {shared_t[1]:.3f} s, "
        f"{seed_t[0] / shared_t[0]:.2f}x / {seed_t[1] / shared_t[1]:.2f}x"
    )


# VmHWM is the peak RSS of this process's own address space; getrusage's ru_maxrss would also
# carry the parent's peak across fork and exec.
_MEMORY_CHILD = """
import re, sys
from musicsep.model.analysis import analyze_file
r = analyze_file(sys.argv[1])
print(r.duration_s, r.tempo.bpm, r.key.label, r.loudness.lufs)
print("maxrss_kb", re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
"""


def measure_memory(minutes: int) -> None:
    """Peak RSS of a fresh process analysing a `minutes`-long 44.1 kHz stereo WAV."""
    import soundfile

    clip = render(make_specs(24, seed=99)[3], 44100, 30.0)["mix"].T
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        with soundfile.SoundFile(path, "w", 44100, 2, subtype="PCM_16") as out:
            for _ in range(minutes * 2):
                out.write(clip)
        start = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, str(path)], capture_output=True, text=True, check=True
        )
        elapsed = time.perf_counter() - start
    lines = child.stdout.strip().splitlines()
    rss_mb = int(lines[-1].split()[1]) / 1024
    print(f"\n{minutes}-minute file: peak RSS {rss_mb:.0f} MB (limit 500 MB), {elapsed:.1f} s; result: {lines[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="24 clips and 2 timing runs")
    parser.add_argument("--count", type=int, default=96, help="number of clips (default 96)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the evaluation set")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (the box has 2 cores)")
    parser.add_argument("--memory", action="store_true", help="also measure a 60-minute file's peak RSS")
    parser.add_argument("--real", type=Path, metavar="MANIFEST", help="also the real dev set (bench/real_set)")
    parser.add_argument("--speed", action="store_true", help="with --real: the speed runs too")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    count, runs = (24, 2) if args.quick else (args.count, 5)
    specs = make_specs(count, seed=args.seed)
    jobs = max(1, min(args.jobs if args.jobs > 1 or not args.real else 2, 2))
    real_items = _real.load_items(args.real) if args.real else []
    start = time.perf_counter()
    with Pool(jobs) as pool:
        real = pool.map_async(_real.evaluate_item, real_items)
        results = pool.map(evaluate_clip, specs)
        real_results = {r["id"]: r for r in real.get()}
    print(
        f"evaluated {len(results)} clips and {len(real_items)} real items in {time.perf_counter() - start:.0f} s "
        f"(seed {args.seed}, {jobs} processes)"
    )
    print_accuracy(results)
    if args.real:
        print_real(real_items, real_results, results)
    if args.speed or not args.real:
        measure_speed(runs)
    if args.memory:
        measure_memory(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
