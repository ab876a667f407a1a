"""How long the harnesses run, and the guards every example runs under (time, memory).

`make test` uses the `ci` profile: each harness runs its own bounded number of examples,
derandomized (the same inputs every run, so the suite is repeatable) and without a saved example
database; about a minute for all of them. `bench/fuzz.py` sets `MUSICSEP_FUZZ_PROFILE=long` and
`MUSICSEP_FUZZ_SCALE`: random inputs, many more of them, the same harnesses.
"""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("MUSICSEP_FUZZ_PROFILE", "ci")
SCALE = float(os.environ.get("MUSICSEP_FUZZ_SCALE", "1"))

#: One example that runs longer than this is a hang (a decoder loop, a parser that never ends).
EXAMPLE_TIME_LIMIT_S = 20.0
#: How far the process's peak RSS may grow over a whole harness (a 64 KiB input that makes a
#: decoder allocate gigabytes trips it).
PEAK_RSS_GROWTH_LIMIT_MB = 300


def budget(examples: int) -> settings:
    """The settings of one harness: `examples` in `make test`, scaled and random in the bench."""
    long = PROFILE == "long"
    return settings(
        max_examples=max(1, int(examples * (SCALE if long else 1))),
        deadline=None,  # a shared CI core makes per-example deadlines flaky; time_limit catches hangs
        derandomize=not long,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


class Hang(Exception):
    """An example ran past EXAMPLE_TIME_LIMIT_S."""


@contextmanager
def time_limit(seconds: float = EXAMPLE_TIME_LIMIT_S) -> Iterator[None]:
    """Interrupt the block (main thread only) when it runs longer than `seconds`.

    The alarm fires between bytecodes, so a loop in Python (the decode loop over packets) is
    stopped; a single C call that never returns would still block, and pytest-timeout ends it.
    """

    def _expired(signum: int, frame: object) -> None:
        raise Hang(f"one example ran longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def show(**inputs: object) -> None:
    """Record an example's inputs in the failure report.

    Hypothesis prints a failing example's arguments itself, but with schemathesis's pytest plugin
    loaded (a dev dependency) they print empty ("data=,"); a `note` survives, so each harness
    notes what it was given.
    """
    from hypothesis import note

    for name, value in inputs.items():
        try:
            shown = repr(value)
        except ValueError:  # an int past Python's 4,300-digit str() limit
            shown = f"<int of {value.bit_length()} bits>"
        note(f"{name} = {shown}")
