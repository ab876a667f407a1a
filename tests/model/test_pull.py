"""`musicsep models pull` for UVR / MSST models, against a real HTTP server on 127.0.0.1.

The catalog's sources are UVR's release URLs; `MUSICSEP_MODEL_DOWNLOAD_URL` points every one at
the local server, which serves files by name (nothing leaves the machine).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from musicsep.model.catalog import load_catalog
from musicsep.model.errors import ModelUnavailable
from musicsep.model.pull import pull_files


@pytest.fixture
def file_server(tmp_path):
    """(base URL, served folder): a threaded HTTP server on 127.0.0.1 serving `served/`."""
    served = tmp_path / "served"
    served.mkdir()
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *args: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/models", served
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _serve(served: Path, name: str, payload: bytes) -> None:
    (served / "models").mkdir(exist_ok=True)
    (served / "models" / name).write_bytes(payload)


def test_pull_writes_the_files_under_uvr_names_and_skips_what_is_there(file_server, tmp_path):
    base, served = file_server
    info = load_catalog()["bs_roformer_viperx_1297"]
    _serve(served, "model_bs_roformer_ep_317_sdr_12.9755.ckpt", os.urandom(3 << 20))
    _serve(served, "model_bs_roformer_ep_317_sdr_12.9755.yaml", b"audio: {}\n")
    folder = tmp_path / "repo"
    assert sorted(pull_files(info, folder, base_url=base, progress=False)) == sorted(info.downloads)
    assert (folder / "model_bs_roformer_ep_317_sdr_12.9755.ckpt").stat().st_size == 3 << 20
    assert pull_files(info, folder, base_url=base, progress=False) == []
    assert not list(folder.glob("*.part"))


def test_checksum_mismatch_and_missing_files_keep_nothing(file_server, tmp_path):
    base, served = file_server
    payload = b"onnx bytes" * 1000
    _serve(served, "Kim_Vocal_2.onnx", payload)
    info = load_catalog()["Kim_Vocal_2"]
    wrong = dataclasses.replace(info, sha256={"Kim_Vocal_2.onnx": "0" * 64})
    folder = tmp_path / "repo"
    with pytest.raises(ModelUnavailable, match="sha256"):
        pull_files(wrong, folder, base_url=base, progress=False)
    assert list(folder.iterdir()) == []
    right = dataclasses.replace(info, sha256={"Kim_Vocal_2.onnx": hashlib.sha256(payload).hexdigest()})
    assert pull_files(right, folder, base_url=base, progress=False) == ["Kim_Vocal_2.onnx"]
    with pytest.raises(ModelUnavailable, match="HTTP 404"):
        pull_files(load_catalog()["UVR_MDXNET_KARA_2"], folder, base_url=base, progress=False)
    assert not (folder / "UVR_MDXNET_KARA_2.onnx").exists()


def test_cli_pull_of_an_ensemble_preset_fetches_each_model(file_server, tmp_path):
    base, served = file_server
    for name in ("UVR-MDX-NET-Inst_HQ_4.onnx", "Kim_Vocal_2.onnx"):
        _serve(served, name, b"x" * 4096)
    repo = tmp_path / "repo"
    repo.mkdir()  # the setting must name an existing folder
    env = {**os.environ, "MUSICSEP_MODEL_REPO": str(repo), "MUSICSEP_MODEL_DOWNLOAD_URL": base, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "musicsep.cli", "models", "pull", "ensemble_low_resource"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(path.name for path in repo.iterdir()) == ["Kim_Vocal_2.onnx", "UVR-MDX-NET-Inst_HQ_4.onnx"]
    again = subprocess.run(
        [sys.executable, "-m", "musicsep.cli", "models", "pull", "ensemble_low_resource"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert again.returncode == 0 and "already on this machine" in again.stdout
