"""The fuzz harnesses of tests/fuzz/, run for minutes with random inputs instead of make test's minute.

    python bench/fuzz.py --minutes 10            # every harness, rounds until the time is spent
    python bench/fuzz.py --minutes 2 -k decoder  # one harness (a pytest -k expression)

Each round is one pytest run of tests/fuzz with `MUSICSEP_FUZZ_PROFILE=long`: fresh random seeds
(make test's profile is derandomized), `--scale` times make test's examples per harness. Rounds
repeat while the time left holds another one. The report: examples per harness against make
test's budget (the baseline of the same harnesses), examples per second, and every failure with
the input hypothesis noted and its `@reproduce_failure` blob. A failure found here becomes a
regression input in tests/fuzz/ (an `@example` or a small byte literal), never a committed file.

schemathesis's pytest plugin is disabled in these runs: with it loaded, hypothesis prints a
failing example's arguments empty (the harnesses' own notes still show them in make test).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpu import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: One harness's block in `--hypothesis-show-statistics`, and its generate phase.
_HARNESS = re.compile(r"^(tests/fuzz/\S+::\S+):$", re.M)
_PHASE = re.compile(r"during generate phase \(([\d.]+) seconds\):.*?(\d+) passing, (\d+) failing", re.S)
_BUDGET = re.compile(r"settings\.max_examples=(\d+)")


def _run_round(scale: float, select: str | None, timeout_s: float) -> tuple[str, float, int]:
    env = {**os.environ, "MUSICSEP_FUZZ_PROFILE": "long", "MUSICSEP_FUZZ_SCALE": str(scale)}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "tests/fuzz",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:schemathesis",
        "--hypothesis-show-statistics",
        "-rfExX",
        "--timeout",
        str(int(timeout_s)),
    ]
    if select:
        cmd += ["-k", select]
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s + 60)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        output, code = f"{expired.stdout or ''}\nround stopped after {timeout_s:.0f} s", -1
    return output, time.monotonic() - started, code


def _statistics(output: str, scale: float) -> dict[str, tuple[int, int, float, int]]:
    """harness -> (passing, failing, seconds) of its generate phase, and make test's max_examples."""
    found = {}
    blocks = _HARNESS.split(output)
    for name, body in zip(blocks[1::2], blocks[2::2], strict=False):
        phase, budget = _PHASE.search(body), _BUDGET.search(body)
        if phase:
            ci = round(int(budget.group(1)) / scale) if budget else 0
            found[name] = (int(phase.group(2)), int(phase.group(3)), float(phase.group(1)), ci)
    return found


def _xfailed(output: str) -> set[str]:
    """Harnesses marked xfail for a known, pinned bug: they stop at its example and explore nothing."""
    return {line.split()[1] for line in output.splitlines() if line.startswith("XFAIL")}


def _failures(output: str) -> list[str]:
    lines = output.splitlines()
    keep = [i for i, line in enumerate(lines) if line.startswith(("FAILED", "XPASS", "ERROR"))]
    notes = [line for line in lines if re.match(r"^E\s+\w+ = ", line) or "@reproduce_failure" in line]
    return [lines[i] for i in keep] + notes[:40]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="total time budget (default 10)")
    parser.add_argument("--scale", type=float, default=3.0, help="examples per round, times make test's (default 3)")
    parser.add_argument("-k", dest="select", default=None, help="pytest -k expression selecting harnesses")
    args = parser.parse_args()

    print(f"CPU: {cpu_model()}")
    deadline = time.monotonic() + args.minutes * 60
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0])
    failures: list[str] = []
    xfailed: set[str] = set()
    rounds, last_round_s = 0, 0.0
    while time.monotonic() + last_round_s < deadline:
        left = deadline - time.monotonic()
        output, last_round_s, code = _run_round(args.scale, args.select, left)
        rounds += 1
        stats = _statistics(output, args.scale)
        for name, (passing, failing, seconds, ci) in stats.items():
            total = totals[name]
            total[0] += passing
            total[1] += failing
            total[2] += seconds
            total[3] = ci or total[3]
        xfailed |= _xfailed(output)
        round_failures = _failures(output)
        failures += round_failures
        print(
            f"round {rounds}: {last_round_s:.0f} s, pytest exit {code}, "
            f"{sum(stat[0] for stat in stats.values())} examples, {len(round_failures)} failure line(s)",
            flush=True,
        )
        if not stats:
            print(output[-3000:])
            break

    print(f"\n{rounds} round(s) in {args.minutes:g} min; examples per harness against make test's budget:")
    print(f"{'harness':80} {'examples':>9} {'make test':>9} {'ratio':>7} {'per s':>7} {'failing':>7}")
    for name, (passing, failing, seconds, ci) in sorted(totals.items()):
        ratio = f"{passing / ci:7.1f}" if ci else "      -"
        rate = passing / seconds if seconds else 0.0
        print(
            f"{name.removeprefix('tests/fuzz/'):80} {int(passing):9d} {int(ci):9d} {ratio} {rate:7.0f} "
            f"{int(failing):7d}"
        )
    for name in sorted(xfailed):
        print(f"{name.removeprefix('tests/fuzz/'):80} not run: xfail, a known bug pinned by its @example")
    print("\nfailures:" if failures else "\nno failures")
    for line in failures:
        print(f"  {line}")


if __name__ == "__main__":
    main()
