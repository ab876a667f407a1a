"""A small real filesystem for the disk-full tests: a tmpfs the test mounts and unmounts.

Mounting needs root (CAP_SYS_ADMIN); where the test runner may not mount, the test skips rather
than fake the error.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")


def _unmount(folder: Path) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Callable[[str], Path]]:
    """Factory: `small_disk("4m")` mounts a fresh tmpfs of that size and returns its folder;
    every one is unmounted when the test ends (after the fixtures set up later, e.g. servers)."""
    mounted: list[Path] = []

    def _make(size: str) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        _mount_tmpfs(folder, size)
        mounted.append(folder)
        return folder

    yield _make
    for folder in reversed(mounted):
        _unmount(folder)
