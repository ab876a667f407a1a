"""Log injection: a request must not be able to write a log line.

A path like `/%0a1999-12-31 ... | INFO | ... - forged` used to be decoded by uvicorn and written
as is into the access line, so the text log showed a second, real-looking record. Every field is
now escaped in one place (the loguru patcher in `musicsep.logging`), in text and JSON modes, and
a traceback's lines are indented so that only a record can start a line at the margin.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from urllib.parse import quote

import httpx
import pytest

from server_harness import spawn_server, wait_until

FORGED = "\n1999-12-31 23:59:59.000 | INFO    | - - | musicsep.api.auth - forged: admin logged in"
#: Everything that can end a line or steer a terminal: LF, CR, ESC, DEL, NEL (C1), U+2028/2029,
#: a bidi override.
HOSTILE = FORGED + "\r\x1b[2J\x7f\x85\u2028\u2029\u202e"
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| ")
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def assert_no_forged_line(text: str) -> None:
    assert not RAW_CONTROLS.search(text), "a control character reached the log unescaped"
    for line in text.splitlines():
        assert not line.startswith("1999-12-31"), f"a forged line: {line!r}"


def server_env(tmp_path, tiny_model_repo, **extra: str) -> dict[str, str]:
    return {
        "MUSICSEP_DATA_DIR": str(tmp_path / "data"),
        "MUSICSEP_MODEL_REPO": str(tiny_model_repo),
        "MUSICSEP_DEFAULT_MODEL": "tiny_htdemucs",
        "MUSICSEP_OFFLINE": "1",
        "MUSICSEP_DEVICE": "cpu",
        **extra,
    }


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_an_encoded_newline_in_the_path_cannot_forge_a_log_line(tmp_path, tiny_model_repo, json_lines):
    log = tmp_path / "server.log"
    server = spawn_server(server_env(tmp_path, tiny_model_repo, MUSICSEP_LOG_JSON="1" if json_lines else "0"), log)
    try:
        reply = httpx.get(server.url + "/" + quote(HOSTILE, safe=""), timeout=10)
        assert reply.status_code == 404
        wait_until(lambda: "forged" in log.read_text(errors="replace"), 10, "the access line of the request")
    finally:
        server.terminate()
    text = log.read_text()
    assert_no_forged_line(text)
    if json_lines:
        records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        (access,) = [r["record"] for r in records if "forged" in r["record"]["message"]]
        assert access["message"].startswith("GET /\\n1999-12-31 23:59:59.000 | INFO")
        assert "\\r\\x1b[2J\\x7f\\x85\\u2028\\u2029\\u202e -> 404" in access["message"]
    else:
        (access,) = [line for line in text.splitlines() if "forged" in line]
        assert RECORD_START.match(access) and "GET /\\n1999-12-31 23:59:59.000 | INFO" in access


LOG_FROM_A_CHILD = """
from loguru import logger
from musicsep.logging import setup_logging

setup_logging(json_lines={json_lines})
logger.bind(job_id={hostile!r}).info("job admitted: model={{}}", {hostile!r})
try:
    raise ValueError("no model named " + {hostile!r})
except ValueError:
    logger.bind(request_id="r1").exception("unexpected error")
"""


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_bound_fields_messages_and_exception_text_are_escaped(json_lines):
    """A process of its own: setup_logging replaces the process's handlers."""
    script = textwrap.dedent(LOG_FROM_A_CHILD.format(json_lines=json_lines, hostile=HOSTILE))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stderr
    assert_no_forged_line(text)
    if json_lines:
        records = [json.loads(line)["record"] for line in text.splitlines()]
        assert [r["message"][:26] for r in records] == ["job admitted: model=\\n1999", "unexpected error"]
        assert records[0]["extra"]["job_id"].startswith("\\n1999-12-31")
    else:
        lines = text.splitlines()
        assert RECORD_START.match(lines[0])
        assert "INFO    | - \\n1999-12-31" in lines[0] and "model=\\n1999-12-31" in lines[0]
        assert RECORD_START.match(lines[1]) and lines[1].endswith("unexpected error")
        assert all(line.startswith(" ") for line in lines[2:]), "a traceback line at the margin"
        assert any(line.lstrip().startswith("ValueError: no model named") for line in lines[2:])
