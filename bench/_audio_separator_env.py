"""python-audio-separator 0.47.x in a virtualenv of its own, for bench/separate_vs_audio_separator.py.

audio-separator pins different numpy, onnx and librosa releases than musicsep, so it gets its own
environment (kept under ~/.cache/musicsep-bench and reused by later runs). torch is installed first
and pinned with a constraints file: the local wheel is the CPU build, and a resolver left free to
pick another torch would download gigabytes of CUDA libraries. A dry run is checked before the
real install so that no `nvidia-*` wheel is ever fetched. audio-separator also needs ffmpeg
(pydub and librosa call it), installed with apt when it is missing.

PyPI's torchvision wheels for Linux are CUDA builds: with the CPU torch their operators do not
load and `import torchvision` fails. audio-separator imports onnx2torch at the top of its MDX
module, and onnx2torch imports torchvision for its NMS and RoIAlign converters only; neither runs
here (onnx2torch itself runs only when the segment size differs from the graph's dim_t, and the
bench keeps them equal, so onnxruntime runs the graph). Where the real torchvision fails to
import, the venv gets a stub package instead whose three functions raise if ever called.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

AUDIO_SEPARATOR = "audio-separator[cpu]==0.47.*"
TORCH = "torch==2.13.0"
DEFAULT_VENV = Path.home() / ".cache" / "musicsep-bench" / "audio-separator-venv"


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def _planned_installs(pip: list[str], constraints: Path) -> list[dict]:
    """What pip would install for audio-separator (its --report), without installing anything."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        _run(
            [*pip, "install", "--dry-run", "--quiet", "--report", str(report), "-c", str(constraints), AUDIO_SEPARATOR],
            stdout=subprocess.DEVNULL,
        )
        return [item["metadata"] for item in json.loads(report.read_text())["install"]]


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """The venv's python with audio-separator importable; creates and fills the venv on first use."""
    python = venv / "bin" / "python"
    if python.exists() and _has_audio_separator(python):
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    # The base interpreter, not this venv's python: a venv made from a venv links to the base anyway.
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)])
    pip = [str(python), "-m", "pip"]
    constraints = venv / "constraints.txt"
    constraints.write_text(f"{TORCH}\n")
    _run([*pip, "install", "--quiet", "-c", str(constraints), TORCH])
    planned = _planned_installs(pip, constraints)
    cuda = sorted(m["name"] for m in planned if m["name"].lower().startswith("nvidia"))
    other_torch = [m["version"] for m in planned if m["name"].lower() == "torch"]
    if cuda or other_torch:
        raise SystemExit(
            f"audio-separator would pull CUDA wheels {cuda} or another torch {other_torch}; refusing to install"
        )
    _run([*pip, "install", "--quiet", "-c", str(constraints), AUDIO_SEPARATOR])
    if not _imports(python, "torchvision"):
        _stub_torchvision(python, pip)
    if not _has_audio_separator(python):
        raise SystemExit(f"audio-separator did not install into {venv}")
    return python


def _has_audio_separator(python: Path) -> bool:
    return _imports(python, "audio_separator.separator.architectures.mdx_separator")


def _imports(python: Path, module: str) -> bool:
    return subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode == 0


TORCHVISION_STUB = '''"""Stand-in written by musicsep's bench: PyPI's torchvision is a CUDA build that does not import
against the CPU torch. onnx2torch imports these names for converters the bench never runs."""


def _absent(*args, **kwargs):
    raise NotImplementedError("torchvision is a stub in this benchmark environment")


nms = box_convert = roi_align = _absent
'''


def _stub_torchvision(python: Path, pip: list[str]) -> None:
    _run([*pip, "uninstall", "--quiet", "-y", "torchvision"])
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True
    ).stdout.strip()
    package = Path(site) / "torchvision"
    package.mkdir()
    (package / "__init__.py").write_text("from torchvision import ops  # noqa: F401\n")
    (package / "ops.py").write_text(TORCHVISION_STUB)


def ensure_ffmpeg() -> None:
    """ffmpeg on PATH; apt-get installs it when missing (the bench runs as root on Debian)."""
    if shutil.which("ffmpeg"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("audio-separator needs ffmpeg on PATH: install it (e.g. apt-get install ffmpeg)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
    _run(["apt-get", "install", "-y", "-qq", "ffmpeg"], env=env, stdout=subprocess.DEVNULL)


def versions(python: Path) -> dict[str, str]:
    """Versions of the packages that decide the figures, in the given interpreter's environment."""
    code = (
        "import importlib.metadata as m, json\n"
        "names = ['audio-separator', 'musicsep', 'torch', 'onnxruntime', 'numpy', 'bs-roformer']\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    return json.loads(_run([str(python), "-c", code], capture_output=True).stdout)


def ffmpeg_version() -> str:
    first = _run(["ffmpeg", "-version"], capture_output=True).stdout.splitlines()[0]
    return first.split(" Copyright")[0]
