"""`pip install musicsep` is the clients, the protocol and `musicsep submit`, without torch.

The wheel is built from this tree and installed into a fresh virtualenv with only the requirements
its metadata declares unconditionally (no extra), exactly what pip resolves for a plain
`pip install musicsep`. In that virtualenv the clients talk to a real server on 127.0.0.1 (run by
this test process, which has the server installed), and the server's commands say which extra to
install instead of raising a traceback. Installing needs PyPI (pip's cache makes repeats quick).
"""

from __future__ import annotations

import email.parser
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from musicsep.config import Settings
from server_harness import start_server

#: What the model layer and the server need; none of it may come with the clients.
SERVER_ONLY = {"torch", "demucs", "librosa", "onnxruntime", "bs-roformer", "fastapi", "uvicorn", "numpy", "scipy"}
PIP_TIMEOUT_S = 240
#: The virtualenv sees only its own site-packages (no PYTHONPATH into this tree); pip runs without
#: its self-update check (it asks PyPI for pip's own releases each run).
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")} | {
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
}


def _pip(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "-q", *args], capture_output=True, text=True, timeout=PIP_TIMEOUT_S, env=ENV
    )
    assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    _pip("wheel", "--no-deps", "--wheel-dir", str(folder), str(Path(__file__).resolve().parents[1]))
    (built,) = folder.glob("musicsep-*.whl")
    return built


def requirements(wheel: Path, extra: str = "") -> list[Requirement]:
    """The wheel's Requires-Dist entries that apply with `extra` ("" for a plain install)."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    parsed = [Requirement(line) for line in metadata.get_all("Requires-Dist", [])]
    return [r for r in parsed if r.marker is None or r.marker.evaluate({"extra": extra})]


def names(reqs: list[Requirement]) -> set[str]:
    return {canonicalize_name(r.name) for r in reqs}


def test_a_plain_install_requires_no_model_or_server_package(wheel):
    plain = names(requirements(wheel))
    assert plain, "the clients need httpx, aiohttp, standardwebhooks and pydantic"
    assert not plain & SERVER_ONLY, plain & SERVER_ONLY


def test_the_server_extra_brings_the_model_stack_and_scaleout_includes_it(wheel):
    server = requirements(wheel, "server")
    pinned = {f"{canonicalize_name(r.name)}{r.specifier}" for r in server}
    assert {"bs-roformer==0.3.10", "onnxruntime>=1.17", "torch>=2.4"} <= pinned
    assert {"fastapi", "uvicorn"} <= names(server)
    # hatchling writes `musicsep[server]` inside `scaleout` out as the server's own requirements.
    assert names(server) | {"celery", "redis", "boto3"} <= names(requirements(wheel, "scaleout"))


#: Runs in the clients-only virtualenv: the imports, then which distributions pip put there.
_CHECK_IMPORTS = textwrap.dedent("""
    import importlib.metadata, importlib.util, json, sys
    import musicsep.clients, musicsep.protocol
    from musicsep.clients import Client
    with Client(sys.argv[1]) as client:
        health = client.health()
    print(json.dumps({
        "health": health["status"],
        "from": musicsep.clients.__file__,
        "importable": sorted(m for m in ("torch", "numpy", "fastapi", "uvicorn") if importlib.util.find_spec(m)),
        "installed": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
    }))
""")


@pytest.fixture(scope="module")
def clients_venv(wheel, tmp_path_factory) -> Path:
    plain = requirements(wheel)
    # Checked before installing too, so that a torch slipping into the plain requirements fails here
    # instead of downloading gigabytes.
    assert not names(plain) & SERVER_ONLY
    venv = tmp_path_factory.mktemp("clients") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60, env=ENV)
    python = str(venv / "bin" / "python")
    _pip("--python", python, "install", "--no-deps", str(wheel))
    _pip("--python", python, "install", *map(str, plain))
    return venv


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server on the weight-free DSP separator (a real job end to end without model files).

    It gets one job at once, not waited for: the first job of a fresh server pays the model
    layer's one-time start (imports, librosa's JIT) for about 15 s on these CPUs, and this way it
    overlaps the virtualenv's install instead of adding to the test's time."""
    import httpx
    import soundfile as sf

    from conftest import synth_music

    folder = tmp_path_factory.mktemp("server")
    live = start_server(
        Settings(data_dir=folder / "data", default_model="dsp", fallback="none", offline=True, device="cpu")
    )
    sf.write(str(folder / "warm.wav"), synth_music(1.0).T, 44100)
    with (folder / "warm.wav").open("rb") as handle:
        files = {"file": ("warm.wav", handle, "audio/wav")}
        assert httpx.post(f"{live.url}/api/v1/jobs", files=files, timeout=30).status_code == 202
    yield live
    live.stop()


def test_the_clients_run_without_torch_against_a_real_server(server, clients_venv):
    argv = [str(clients_venv / "bin" / "python"), "-c", _CHECK_IMPORTS, server.url]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=clients_venv, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout)
    assert seen["health"] == "ok"
    assert Path(seen["from"]).is_relative_to(clients_venv)
    assert seen["importable"] == []
    installed = {canonicalize_name(name) for name in seen["installed"]}
    assert "musicsep" in installed and not installed & SERVER_ONLY, sorted(installed)


def test_musicsep_submit_separates_a_file_from_a_clients_only_install(server, clients_venv, make_clip, tmp_path):
    clip, out = make_clip(seconds=2.0), tmp_path / "stems"
    options = ["--server", server.url, "--format", "flac", "--out", str(out)]
    argv = [str(clients_venv / "bin" / "musicsep"), "submit", str(clip), *options]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = [Path(line) for line in result.stdout.splitlines()]
    assert saved and all(path.parent == out and path.suffix == ".flac" and path.stat().st_size > 0 for path in saved)


@pytest.mark.parametrize(("command", "extra"), [("serve", "server"), ("separate", "server"), ("worker", "scaleout")])
def test_server_commands_name_the_extra_to_install(clients_venv, command, extra, tmp_path):
    argv = [str(clients_venv / "bin" / "musicsep"), command]
    if command == "separate":
        argv.append(str(tmp_path / "song.wav"))
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=ENV)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"pip install 'musicsep[{extra}]'" in result.stderr, result.stderr
