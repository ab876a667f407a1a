"""Where uploads wait between the end of their body and their job: swept when their process died.

An upload is copied into the data dir (so that the job takes it by rename) and checked before any
job exists; a process killed during that copy used to leave the file in `data_dir/uploads` for
ever, because nothing owns it. Each process now copies into its own folder,
`data_dir/uploads/<random>/`, and holds an exclusive `flock` on that folder for as long as it
lives. The kernel drops the lock when the process ends, however it ends (kill -9 included), so at
startup a folder whose lock can be taken belongs to nobody and is removed, while the folders of
other live processes sharing the data dir (several API nodes in scale-out) stay locked and
untouched. Loose files from before this layout are removed once they are older than any copy
takes. (The multipart parser's own spool is an anonymous temporary file: it vanishes with the
process.)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from loguru import logger

#: Prefix of a process folder between its creation and its lock; one older than the grace period
#: belongs to a process that died in those microseconds.
_FORMING = ".forming-"
_FORMING_GRACE_S = 60.0
#: Loose upload files (the layout before per-process folders) older than this are abandoned.
_LOOSE_FILE_AGE_S = 3600.0


class UploadFolder:
    """This process's folder for uploads being checked; `close()` removes it at shutdown."""

    def __init__(self, data_dir: Path) -> None:
        root = data_dir / "uploads"
        root.mkdir(parents=True, exist_ok=True)
        sweep_abandoned(root)
        # Locked under a name the sweep leaves alone, then renamed (the lock follows the folder):
        # a visible process folder is never unlocked while its process lives.
        forming = Path(tempfile.mkdtemp(dir=root, prefix=_FORMING))
        self._fd = os.open(forming, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = root / forming.name.removeprefix(_FORMING)
        os.rename(forming, self.path)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)


def _unlocked(folder: Path) -> bool:
    """True when no live process holds `folder`'s lock."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the lock just taken
    return True


def sweep_abandoned(root: Path) -> int:
    """Remove what dead processes left under `root`; returns how many entries were removed."""
    removed = 0
    now = time.time()
    for entry in root.iterdir():
        try:
            age = now - entry.stat().st_mtime
            if entry.is_dir() and (age > _FORMING_GRACE_S if entry.name.startswith(_FORMING) else _unlocked(entry)):
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.is_file() and age > _LOOSE_FILE_AGE_S:
                entry.unlink(missing_ok=True)
            else:
                continue
        except FileNotFoundError:  # another process swept it first
            continue
        removed += 1
    if removed:
        logger.info("removed {} upload(s) left by a process that stopped during an upload", removed)
    return removed
