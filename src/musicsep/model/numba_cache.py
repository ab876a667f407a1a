"""The first librosa work of each process runs under an inter-process lock.

librosa's numba functions are compiled on first use and cached on disk (`cache=True`: in
librosa's `__pycache__`, or `NUMBA_CACHE_DIR`). Processes that compile the same functions at
the same moment corrupt each other's cache files and crash with a segfault, not an exception:
on a fresh install, four processes calling `librosa.beat.beat_track` at once lost two or three
of the four in each of three rounds. A fresh install with several Celery workers, a server and a
CLI run, or a parallel test run does exactly that.

Under the lock (`filelock`, a maintained library, rather than hand-written `fcntl` calls) the
first process compiles and writes the cache; the next ones load it. Once this process's first
use has run, every function it needs is compiled or loaded, and later calls take no lock. A
function the first track does not reach (silence, a clip too short for a tempo, no steady pulse:
the beat tracker is never called) would compile later, unlocked, and crash beside another
process's first use (a fresh clone's parallel test run lost two workers that way), so a caller
passes `warm_up`, which calls what its later tracks may need on a small input, under the lock.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout
from loguru import logger

#: One lock per machine (every user may open it: mode 0o666 in a sticky temp folder).
_LOCK_PATH = os.path.join(tempfile.gettempdir(), "musicsep-numba-cache.lock")
#: A process stuck while holding the lock must not stop every other one for good.
_WAIT_S = 300.0

_first_use_done = False
_this_process = threading.Lock()


@contextmanager
def first_numba_use(warm_up: Callable[[], None] | None = None) -> Iterator[None]:
    """Run `warm_up` and the body under the machine-wide lock if this process has not used librosa yet."""
    global _first_use_done
    if _first_use_done:
        yield
        return
    with _this_process:
        try:
            lock = FileLock(_LOCK_PATH, mode=0o666, timeout=_WAIT_S)
            lock.acquire()
        except (Timeout, OSError) as exc:
            logger.warning("compiling librosa's numba functions without the lock ({})", exc)
            lock = None
        try:
            if warm_up is not None:
                warm_up()
            yield
            _first_use_done = True
        finally:
            if lock is not None:
                lock.release()
