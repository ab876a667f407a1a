# musicsep on CPU: the API (`musicsep serve`) and the scale-out worker (`musicsep worker`) share
# this image; deploy/compose.yaml picks the command. docs/deploy.md explains the settings.
#
#   docker build -t musicsep .
#   docker build -t musicsep --build-arg PULL_MODELS="htdemucs htdemucs_ft" .   # weights baked in
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HOME=/models/hf \
    MUSICSEP_DATA_DIR=/data \
    MUSICSEP_HOST=0.0.0.0

# libsndfile for soundfile; FFmpeg comes inside the PyAV wheel.
RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The CPU build of torch first (the default index would pull the CUDA build, ~2 GB more).
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.*"
COPY pyproject.toml README.md ./
COPY configs ./configs
COPY uvicorn_config.json ./
COPY src ./src
# The server and the scale-out backends (a plain `pip install musicsep` would be the clients only).
RUN pip install ".[server,scaleout]"

# Weights: baked in at build time (needs internet while building) or mounted at /models.
ARG PULL_MODELS=""
RUN for name in $PULL_MODELS; do musicsep models pull "$name"; done

# The analysis' numba functions compiled at build time, into a cache the musicsep user reads
# (librosa's own __pycache__ is not writable by it, so numba would not look there).
ENV NUMBA_CACHE_DIR=/var/cache/musicsep-numba
RUN python -m musicsep.model.analysis.precompile

RUN useradd --create-home --uid 10001 musicsep && mkdir -p /data /models \
    && chown -R musicsep /data /models /var/cache/musicsep-numba
USER musicsep
VOLUME ["/data"]
EXPOSE 8000
CMD ["musicsep", "serve"]
