"""How well the weight-free `dsp` separator does, against a naive split measured in the same run.

    python bench/dsp_quality.py --real --no-memory   # real multitracks, then 6 synthetic songs of 24 s
    python bench/dsp_quality.py                      # synthetic songs, then memory 5 vs 30 min
    python bench/dsp_quality.py --real --real-split dev --songs 3 --no-memory

Real: the MUSDB18 7-second previews listed in bench/real_multitracks/manifest.json (stems recorded
and mixed by people; materialise.py decodes them from a fetched mirror into the cache). Each
excerpt's mixture is the sum of its four stems; a stem whose reference is silent in an excerpt
(below -40 dB of the mixture's power) is left out of that stem's mean. The `eval` split (MUSDB18's
test folder) is what is reported; `dev` (its train folder) is where parameters may be chosen.

Synthetic: multitrack songs (bench/_multitrack.py: drum kit, bass line, chords, a sung
lead with vibrato and formants panned centre) are mixed and separated; per-stem SDR comes from
fast_bss_eval (BSS Eval's SDR, 512-tap distortion filter), for `dsp` and for the naive baseline:
drums = librosa's plain HPSS percussive part of the mix, and its harmonic part split equally
among vocals, bass and other (each = harmonic / 3). Floors: dsp's mean SDR over the four stems at
least 1.5 dB above the naive one on both sets, and no stem's mean below its naive estimate on the
real excerpts. The synthetic set's worst stem is printed, not floored: its drum kit of noise bursts
rewards a wide HPSS frequency kernel that real drums punish, and the kernel is chosen on real music.

Memory: the separator runs over a 5-minute and a 30-minute input in a fresh subprocess each (the
input is read on the fly, so only the separator's memory grows with length, if anything does) and
the peak RSS of the two is compared. Floor: 30 minutes within 1.15x of 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _multitrack import SR, STEMS, make_song  # noqa: E402

MEAN_MARGIN_DB = 1.5
RSS_RATIO_FLOOR = 1.15
#: A stem whose reference is this far below the mixture's power in an excerpt is silent there: its
#: SDR would measure nothing but the estimate's leakage, so it is left out of that stem's mean.
SILENT_DB = -40.0
REAL_DIR = Path(__file__).resolve().parent / "real_multitracks"


def separate_dsp(mix: np.ndarray) -> dict[str, np.ndarray]:
    from musicsep.model.dsp import DspSeparator
    from musicsep.model.spill import ArrayReader

    separator = DspSeparator()
    blocks = list(separator.run(ArrayReader(mix), mix.shape[-1], list(STEMS), lambda: None))
    return dict(zip(STEMS, np.concatenate(blocks, axis=-1), strict=True))


def separate_naive(mix: np.ndarray) -> dict[str, np.ndarray]:
    import librosa

    harmonic, percussive = librosa.effects.hpss(mix)
    return {"drums": percussive, "bass": harmonic / 3, "other": harmonic / 3, "vocals": harmonic / 3}


def sdr(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray]) -> dict[str, float]:
    """BSS Eval SDR per stem, averaged over the two channels.

    Each stem is scored alone against its own reference (SDR does not depend on the other
    references), so no permutation is searched for: the naive baseline's three equal estimates
    cannot be shuffled onto better references.
    """
    import fast_bss_eval

    n = min(min(x.shape[-1] for x in references.values()), min(x.shape[-1] for x in estimates.values()))
    ref = np.stack([references[s][..., :n] for s in STEMS]).astype(np.float64).reshape(-1, 1, n)
    est = np.stack([estimates[s][..., :n] for s in STEMS]).astype(np.float64).reshape(-1, 1, n)
    scores = np.asarray(fast_bss_eval.sdr(ref, est))[:, 0].reshape(len(STEMS), -1).mean(axis=1)
    return dict(zip(STEMS, map(float, scores), strict=True))


def score(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray]) -> dict[str, float]:
    """`sdr`, with NaN for the stems whose reference is silent (SILENT_DB)."""
    floor = float(np.mean(sum(references.values()) ** 2)) * 10 ** (SILENT_DB / 10)
    scores = sdr(references, estimates)
    return {s: scores[s] if float(np.mean(references[s] ** 2)) > floor else float("nan") for s in STEMS}


def _row(label: str, dsp: dict[str, float], naive: dict[str, float]) -> str:
    cells = "  ".join(f"{dsp[s]:6.2f} / {naive[s]:6.2f}" for s in STEMS)
    return f"{label:<34}{cells}  {np.nanmean(list(dsp.values())):6.2f} / {np.nanmean(list(naive.values())):6.2f}"


def _header(title: str) -> None:
    print(title)
    print(f"{'item':<34}" + "  ".join(f"{s:^15}" for s in STEMS) + f"  {'mean':^15}")


def summary(label: str, dsp_all: list[dict[str, float]], naive_all: list[dict[str, float]]) -> tuple[float, float]:
    """Print the mean row, the margin on the mean and the worst stem; return (margin, worst margin).

    A stem's mean is over the items where its reference sounds; the overall mean is the mean of
    the four stem means, as in the synthetic table.
    """
    dsp_mean = {s: float(np.nanmean([d[s] for d in dsp_all])) for s in STEMS}
    naive_mean = {s: float(np.nanmean([d[s] for d in naive_all])) for s in STEMS}
    print(_row(f"MEAN {label}", dsp_mean, naive_mean))
    counted = ", ".join(f"{s} {sum(not np.isnan(d[s]) for d in dsp_all)}" for s in STEMS)
    margins = {s: dsp_mean[s] - naive_mean[s] for s in STEMS}
    worst = min(STEMS, key=margins.__getitem__)
    gain = float(np.mean(list(dsp_mean.values())) - np.mean(list(naive_mean.values())))
    pairs = zip(dsp_all, naive_all, strict=True)
    wins = sum(np.nanmean(list(d.values())) > np.nanmean(list(n.values())) for d, n in pairs)
    print(
        f"{label}: dsp {gain:+.2f} dB over naive on the mean SDR; per stem "
        + ", ".join(f"{s} {margins[s]:+.2f}" for s in STEMS)
        + f"; worst stem {worst} {margins[worst]:+.2f} dB; dsp's mean above naive's on {wins} of "
        + f"{len(dsp_all)} items (stems scored: {counted})"
    )
    return gain, margins[worst]


def _real_item(item: dict) -> tuple[dict[str, float], dict[str, float], float]:
    """Worker: one real excerpt separated both ways and scored; also dsp's seconds."""
    from materialise import load

    stems = load(item)
    mix = sum(stems.values())
    started = time.perf_counter()
    dsp_est = separate_dsp(mix)
    taken = time.perf_counter() - started
    return score(stems, dsp_est), score(stems, separate_naive(mix)), taken


def real_quality(split: str, jobs: int, limit: int | None = None) -> bool:
    """The real excerpts of `split` (dev, eval or all; the first `limit` only, for a quick look),
    in `jobs` processes; False if they are not materialised or miss a floor."""
    sys.path.insert(0, str(REAL_DIR))
    from materialise import CACHE, MANIFEST, cached_path

    manifest = json.loads(MANIFEST.read_text())
    items = [i for i in manifest["items"] if split in ("all", i["split"])][:limit]
    missing = [i["id"] for i in items if not cached_path(i).exists()]
    if missing:
        print(f"{len(missing)} real items not in {CACHE}: run bench/real_multitracks/materialise.py first")
        return False
    seconds = sum(np.load(cached_path(i), mmap_mode="r").shape[-1] for i in items) / SR
    _header(
        f"REAL multitracks, split {split}: {len(items)} excerpts ({seconds:.0f} s, "
        f"{manifest['source']['repo']}@{manifest['source']['commit'][:12]}), per-stem SDR in dB, dsp / naive"
    )
    dsp_all, naive_all, taken = [], [], 0.0
    with multiprocessing.Pool(jobs) as pool:
        for item, (dsp_scores, naive_scores, spent) in zip(items, pool.imap(_real_item, items), strict=True):
            dsp_all.append(dsp_scores)
            naive_all.append(naive_scores)
            taken += spent
            print(_row(item["id"][:33], dsp_scores, naive_scores), flush=True)
    gain, worst = summary(f"real {split}", dsp_all, naive_all)
    print(f"dsp speed on the real excerpts: {seconds / taken:.1f}x real time per process ({jobs} processes)")
    verdict = "PASS" if gain >= MEAN_MARGIN_DB else "FAIL"
    print(f"{verdict} real mean SDR: dsp {gain:+.2f} dB over naive (floor +{MEAN_MARGIN_DB} dB)")
    print(f"{'PASS' if worst >= 0 else 'FAIL'} real: no stem below its naive estimate (worst {worst:+.2f} dB)")
    return gain >= MEAN_MARGIN_DB and worst >= 0


def quality(songs: int, seconds: float, first_seed: int) -> bool:
    _header(f"SYNTHETIC songs: per-stem SDR in dB (fast_bss_eval), dsp / naive, {songs} songs of {seconds:.0f} s")
    dsp_all, naive_all, seconds_taken = [], [], 0.0
    for seed in range(first_seed, first_seed + songs):
        song = make_song(seed, seconds)
        started = time.perf_counter()
        dsp_est = separate_dsp(song.mix)
        seconds_taken += time.perf_counter() - started
        residue = float(np.max(np.abs(sum(dsp_est.values()) - song.mix)))
        dsp_all.append(score(song.stems, dsp_est))
        naive_all.append(score(song.stems, separate_naive(song.mix)))
        print(_row(f"{seed}: {song.description}", dsp_all[-1], naive_all[-1]) + f"  sum err {residue:.1e}", flush=True)
    gain, worst = summary("synthetic", dsp_all, naive_all)
    print(f"dsp speed: {songs * seconds / seconds_taken:.1f}x real time on this machine")
    ok_mean = gain >= MEAN_MARGIN_DB
    verdict = "PASS" if ok_mean else "FAIL"
    print(f"{verdict} synthetic mean SDR: dsp {gain:+.2f} dB over naive (floor +{MEAN_MARGIN_DB} dB)")
    print(f"synthetic worst stem {worst:+.2f} dB against its naive estimate (reported, not floored)")
    return ok_mean


class _TiledReader:
    """A long input made by repeating one song: read on demand, so its length costs no memory."""

    def __init__(self, loop: np.ndarray) -> None:
        self.loop = loop

    def read(self, start: int, stop: int) -> np.ndarray:
        index = np.arange(start, stop)
        out = self.loop[:, index % self.loop.shape[-1]]
        out[:, index < 0] = 0.0
        return out


def _measure_child(minutes: float, loop_path: str) -> None:
    """Subprocess body: separate `minutes` of audio, print peak RSS (MiB) and time as JSON."""
    from musicsep.model.dsp import DspSeparator

    reader = _TiledReader(np.load(loop_path))
    frames = int(minutes * 60 * SR)
    separator = DspSeparator()
    started = time.perf_counter()
    total = 0
    for block in separator.run(reader, frames, list(STEMS), lambda: None):
        total += block.shape[-1]
    assert total == frames
    print(json.dumps({"peak_rss_mib": _peak_rss_kib() / 1024, "seconds": time.perf_counter() - started}))


def _peak_rss_kib() -> int:
    """This process's own peak RSS. Linux's getrusage ru_maxrss survives fork and exec, so a child
    of a big parent reports the parent's peak; /proc's VmHWM belongs to this process image alone."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory(minutes: list[float]) -> bool:
    """Peak RSS of a fresh process per length; the song is made here, not in the measured process."""
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        loop_path = str(Path(tmp) / "loop.npy")
        np.save(loop_path, make_song(0, 24.0).mix)
        for length in minutes:
            done = subprocess.run(
                [sys.executable, __file__, "--rss-child", str(length), loop_path],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            peaks[length] = result["peak_rss_mib"]
            print(
                f"{length:g} min input: peak RSS {result['peak_rss_mib']:.0f} MiB, separated in "
                f"{result['seconds']:.0f} s ({length * 60 / result['seconds']:.1f}x real time)",
                flush=True,
            )
    ratio = peaks[minutes[-1]] / peaks[minutes[0]]
    ok = ratio <= RSS_RATIO_FLOOR
    print(
        f"{'PASS' if ok else 'FAIL'} peak RSS {minutes[-1]:g} min / {minutes[0]:g} min = {ratio:.3f} "
        f"(floor {RSS_RATIO_FLOOR})"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--first-seed", type=int, default=10)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--real", action="store_true", help="score the real multitracks first")
    parser.add_argument("--real-split", choices=("eval", "dev", "all"), default="eval")
    parser.add_argument("--real-limit", type=int, help="only the split's first N excerpts (a quick look)")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the real excerpts")
    parser.add_argument("--memory-minutes", default="5,30")
    parser.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        _measure_child(float(args.rss_child[0]), args.rss_child[1])
        return 0
    ok = real_quality(args.real_split, args.jobs, args.real_limit) if args.real else True
    ok = quality(args.songs, args.seconds, args.first_seed) and ok
    if not args.no_memory:
        ok = memory([float(m) for m in args.memory_minutes.split(",")]) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
