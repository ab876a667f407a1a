# The two commands a user needs: `make run` and `make test`. Both build .venv on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch==2.13.0 takes the local CPU build on the project machines; `make setup TORCH=torch` for CUDA.
# setup installs the server, the scale-out backends and the test tools (docs/install.md: a plain
# `pip install musicsep` is the clients only).
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup browser lint run test clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[server,scaleout,dev]"
	$(PY) -m musicsep.model.analysis.precompile  # numba's compilation once, not in the first job
	touch $(STAMP)

# The server on the embedded default (SQLite + local files under ./data, no Redis, no S3);
# `musicsep serve` prints the URL it listens on. MUSICSEP_* variables change the settings.
run: setup
	$(VENV)/bin/musicsep serve --config uvicorn_config.json

# The browser tests drive Debian's Chromium (Playwright's own download does not work here);
# installed when missing and apt can be used (root), else those tests skip.
browser:
	command -v chromium >/dev/null || (test "$$(id -u)" = 0 && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) || true

# The checks docs/architecture.md describes: ruff (lint and format), import-linter (layer contracts), mypy.
lint: setup
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

# One pytest worker per core (pytest-xdist): most tests wait on servers, sockets and child
# processes, so the cores overlap them; work stealing keeps the long tests from ending on one worker.
test: setup browser lint
	$(PY) -m pytest -q -n auto --dist worksteal --durations=15

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
