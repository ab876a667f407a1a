"""The figures of bench/separate_vs_audio_separator.py: per-leg table, ratios, SDR and the floors."""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from _measure import Measurement

TOOLS = ("audio-separator", "musicsep")
WALL_FLOOR = 1 / 1.2  # musicsep wall <= audio-separator's / 1.2
RSS_FLAT = 1.15  # musicsep's long-track peak RSS within 15 % of the short track's
SDR_FLOOR_DB = 60.0
FULL = {"track_seconds": 180.0, "roformer_seconds": 30.0, "long_minutes": 30.0}


@dataclass
class Leg:
    """One comparison: a model family on one track, both tools' runs, and (for the quality legs) SDR."""

    key: str
    family: str
    track: Path
    models: Path
    runs: dict[str, list[Measurement]] = field(default_factory=lambda: {tool: [] for tool in TOOLS})
    sdr: dict[str, dict[str, float]] | None = None
    #: musicsep's first use of the leg's model files before the rounds (conversion, calibration), if run.
    cold: Measurement | None = None
    #: musicsep's runtime lines of that first use and of the rounds (`auto`'s cache miss / hits).
    runtime_lines: list[str] = field(default_factory=list)

    def median(self, tool: str, what: str) -> float:
        return statistics.median(getattr(m, what) for m in self.runs[tool])

    def wall_ratio(self) -> float:
        """musicsep ÷ audio-separator wall time, per round (same machine load), then the median."""
        pairs = zip(self.runs["musicsep"], self.runs["audio-separator"], strict=True)
        return statistics.median(m.wall_s / a.wall_s for m, a in pairs)


def avx512_flags() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    flags = next((line.partition(":")[2].split() for line in out.splitlines() if line.startswith("Flags")), [])
    return " ".join(sorted(f for f in flags if f.startswith("avx512"))) or "none"


def report(legs: list[Leg], args, versions: dict, cpu: str, prefix: list[str]) -> int:
    """Print everything; the exit status is 0 when every floor holds."""
    reduced = [f"--{k.replace('_', '-')} {getattr(args, k):g}" for k, v in FULL.items() if getattr(args, k) != v]
    print(f"\nCPU: {cpu}; avx512 flags: {avx512_flags()}; OMP/MKL threads 2; machine possibly shared")
    for env, found in versions.items():
        print(f"{env}: {found if isinstance(found, str) else ', '.join(f'{k} {v}' for k, v in found.items())}")
    print(
        f"network: {'off (unshare -n) for both tools' if prefix else 'on (unshare -n unavailable)'};"
        f" {args.runs} alternated round(s) per leg;"
        f" settings {'reduced: ' + ', '.join(reduced) if reduced else 'full (as the issue asks)'}"
    )
    print(f"\n{'leg':<22} {'tool':<16} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12}")
    for leg in legs:
        for tool in TOOLS:
            print(
                f"{leg.key:<22} {tool:<16} {leg.median(tool, 'wall_s'):>8.1f} {leg.median(tool, 'cpu_s'):>8.1f}"
                f" {leg.median(tool, 'peak_rss_mb'):>12.0f}"
            )
        if leg.cold is not None:
            print(
                f"{'':<22} {'musicsep cold':<16} {leg.cold.wall_s:>8.1f} {leg.cold.cpu_s:>8.1f}"
                f" {leg.cold.peak_rss_mb:>12.0f}  (first use on a 2 s clip, before the rounds; not in the ratios)"
            )
        print(
            f"{'':<22} {'musicsep / a-s':<16} {leg.wall_ratio():>8.2f}"
            f" {leg.median('musicsep', 'cpu_s') / leg.median('audio-separator', 'cpu_s'):>8.2f}"
            f" {leg.median('musicsep', 'peak_rss_mb') / leg.median('audio-separator', 'peak_rss_mb'):>12.2f}"
        )
    for leg in legs:
        for line in dict.fromkeys(leg.runtime_lines):  # each distinct line once
            print(f"{leg.key} musicsep {line}")
    verdicts = []
    by_key = {leg.key: leg for leg in legs}
    for key, what in (
        ("mdx", f"Inst HQ 4, {args.track_seconds:g} s"),
        ("roformer", f"BS-RoFormer 1297, {args.roformer_seconds:g} s"),
    ):
        leg = by_key.get(key)
        if leg is None:
            continue
        ratio = leg.wall_ratio()
        verdicts.append(
            (f"{what}: wall musicsep / audio-separator {ratio:.2f} (floor <= {WALL_FLOOR:.2f})", ratio <= WALL_FLOOR)
        )
        for stem, s in (leg.sdr or {}).items():
            print(
                f"SDR {what} {stem}: {s['sdr_db']:.1f} dB (max abs diff {s['max_abs_diff']:.2e}; input peak"
                f" {s['input_peak']:g}; audio-separator stem x {s['gain']:.6f} (1: not rescaled on writing);"
                f" frames {s['reference_frames']} vs {s['estimate_frames']})"
            )
            if s["estimate_clamped"]:
                print(
                    f"  not comparable: {s['estimate_clamped']} samples of musicsep's {stem} sit at +-1.0 (its float"
                    " output clamps there, as Demucs's does) while audio-separator rescales the whole stem; the"
                    " random weights make this stem louder than 1.0"
                )
            verdicts.append(
                (
                    f"{what}: SDR {stem} {s['sdr_db']:.1f} dB (floor >= {SDR_FLOOR_DB:g})",
                    s["sdr_db"] >= SDR_FLOOR_DB and s["reference_frames"] == s["estimate_frames"],
                )
            )
    for family, what in (("mdx", f"ONNX ({args.rss_mdx_size})"), ("roformer", "reduced RoFormer")):
        short, long = by_key.get(f"rss-{family}-short"), by_key.get(f"rss-{family}-long")
        if short is None or long is None:
            continue
        growth = {tool: long.median(tool, "peak_rss_mb") / short.median(tool, "peak_rss_mb") for tool in TOOLS}
        print(
            f"RSS {what}: {args.long_minutes:g} min / {args.track_seconds:g} s: musicsep"
            f" {growth['musicsep']:.2f}x, audio-separator {growth['audio-separator']:.2f}x"
        )
        verdicts.append(
            (
                f"RSS {what}: musicsep long/short {growth['musicsep']:.2f} (floor <= {RSS_FLAT:.2f})",
                growth["musicsep"] <= RSS_FLAT,
            )
        )
        verdicts.append(
            (
                f"RSS {what}: audio-separator long/short {growth['audio-separator']:.2f} (grows: > 1.15)",
                growth["audio-separator"] > RSS_FLAT,
            )
        )
    for text, ok in verdicts:
        print(("PASS " if ok else "FAIL ") + text)
    return 0 if all(ok for _, ok in verdicts) else 1
