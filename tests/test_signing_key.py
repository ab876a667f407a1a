"""The key that signs download links and stream tokens: never empty or short, written atomically.

An empty `signing.key` (what a crash or a full disk during its first write left behind) used to
be accepted: every link was then an HMAC under the empty key, which anyone can compute. Keys
shorter than 32 bytes are refused now, from the file and from MUSICSEP_SIGNING_KEY, at startup
and with a message that says what to do; the file is written atomically so that it is either
absent or whole.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from musicsep.config import Settings
from musicsep.service.signing import SigningKeyRefused, load_or_create_key
from server_harness import free_port, stop_process

STARTUP_S = 30


def serve(tmp_path: Path, model_repo: Path, **env: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "MUSICSEP_DATA_DIR": str(tmp_path / "data"),
        "MUSICSEP_MODEL_REPO": str(model_repo),
        "MUSICSEP_DEFAULT_MODEL": "tiny_htdemucs",
        "MUSICSEP_OFFLINE": "1",
        "MUSICSEP_DEVICE": "cpu",
        "MUSICSEP_PORT": str(free_port()),
        "MUSICSEP_HOST": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "musicsep.cli", "serve"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def refused_at_startup(process: subprocess.Popen) -> tuple[int, str]:
    """The exit status and output of a server that must stop by itself; fails if it serves."""
    try:
        output, _ = process.communicate(timeout=STARTUP_S)
    except subprocess.TimeoutExpired:
        stop_process(process)
        pytest.fail("the server started and kept serving with a key it should have refused")
    return process.returncode, output


def test_an_empty_signing_key_file_is_refused_at_startup(tmp_path, tiny_model_repo):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "signing.key").write_bytes(b"")
    status, output = refused_at_startup(serve(tmp_path, tiny_model_repo))
    assert status == 2, output
    assert "signing.key holds 0 bytes" in output and "at least 32" in output
    assert "delete it" in output.lower() and "MUSICSEP_SIGNING_KEY" in output
    assert "Traceback" not in output


def test_a_short_musicsep_signing_key_is_refused_at_startup(tmp_path, tiny_model_repo):
    status, output = refused_at_startup(serve(tmp_path, tiny_model_repo, MUSICSEP_SIGNING_KEY="k3y-0f-20-characters"))
    assert status == 2, output
    assert "MUSICSEP_SIGNING_KEY" in output and "at least 32 bytes" in output and "secrets.token_urlsafe" in output
    assert "k3y-0f-20-characters" not in output  # the secret itself is never echoed


@pytest.mark.parametrize("key", ["", "x" * 31])
def test_settings_refuse_a_signing_key_under_32_bytes(key):
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(signing_key=key)
    assert Settings(signing_key="k" * 32).signing_key is not None


@pytest.mark.parametrize("length", [0, 1, 31])
def test_a_short_signing_key_file_is_refused(tmp_path, length):
    (tmp_path / "signing.key").write_bytes(b"k" * length)
    with pytest.raises(SigningKeyRefused, match=f"holds {length} bytes"):
        load_or_create_key(tmp_path)


def test_the_generated_key_is_32_random_bytes_readable_by_the_owner_only(tmp_path):
    key = load_or_create_key(tmp_path / "data")
    path = tmp_path / "data" / "signing.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["signing.key"]  # no temp file left
    assert load_or_create_key(tmp_path / "data") == key
    assert load_or_create_key(tmp_path / "other") != key


def test_a_failed_first_write_leaves_no_empty_key_behind(tmp_path):
    """A real failed write, not a mock: the child's file size limit is 0 bytes (RLIMIT_FSIZE),
    so its write fails with EFBIG as a full disk would with ENOSPC."""
    data = tmp_path / "data"
    child = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        from musicsep.service.signing import load_or_create_key
        try:
            load_or_create_key(Path({str(data)!r}))
        except OSError as exc:
            sys.exit(f"write failed: {{exc.strerror}}")
        sys.exit("the write did not fail")
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert "write failed" in result.stderr, result.stderr
    # The next start must get a whole key: not the empty file the interrupted write used to leave.
    assert len(load_or_create_key(data)) == 32
