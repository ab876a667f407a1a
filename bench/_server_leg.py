"""The warm-server leg of bench/separate_vs_demucs.py: upload → `completed` within 1.10x of the CLI's run.

A `musicsep serve` subprocess with the model preloaded; each run uploads the track with the same
settings as the CLI runs and times upload → `completed` from the client's side. Plain httpx and
line-by-line SSE parsing (no musicsep import): this process stays free of torch and numpy so
that the children's peak RSS readings stay honest (see _measure.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from _serve import ServeProcess


class WarmServer(ServeProcess):
    """`musicsep serve` with `model` from the folder `repo` preloaded (startup waits up to 300 s)."""

    def __init__(self, repo: Path, data_dir: Path, env: dict[str, str], model: str = "htdemucs") -> None:
        self.model = model
        super().__init__(
            data_dir,
            {
                **env,
                "MUSICSEP_MODEL_REPO": str(repo),
                "MUSICSEP_PRECISION": "fp32",
                "MUSICSEP_PRELOAD": json.dumps([model]),
            },
            model=model,
            startup_s=300,
        )

    def separate(self, track: Path) -> float:
        """Seconds from the start of the upload to the `completed` event."""
        fields = {"model": self.model, "shifts": "0", "overlap": "0.25", "format": "float32", "analyze": "false"}
        started = time.perf_counter()
        with httpx.Client(timeout=httpx.Timeout(60.0, read=3600.0)) as http:
            with track.open("rb") as audio:
                accepted = http.post(
                    f"{self.url}/api/v1/jobs", data=fields, files={"file": (track.name, audio, "audio/wav")}
                )
            accepted.raise_for_status()
            with http.stream("GET", f"{self.url}/api/v1/jobs/{accepted.json()['job_id']}/events") as events:
                for line in events.iter_lines():
                    if line in ("event: completed", "event: failed", "event: cancelled"):
                        elapsed = time.perf_counter() - started
                        if line != "event: completed":
                            raise SystemExit(f"the server's job ended with {line}")
                        return elapsed
        raise SystemExit("the event stream ended without a terminal event")
