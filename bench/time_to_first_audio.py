"""Upload → first audible sample of `vocals` in the browser, against the whole job (issue 16).

    python bench/time_to_first_audio.py            # 3-minute track: htdemucs (all stems), htdemucs_ft vocals only
    python bench/time_to_first_audio.py --quick    # 30 s track (development)

A `musicsep serve` child process with randomly initialised full-size models (htdemucs, and the
four-member htdemucs_ft bag; both preloaded, so no leg pays a model load) and Debian's Chromium
driven by Playwright. Each leg uploads the track through the page's own form with "Listen while it
separates" on, as a person would, and reads the page's timeline (performance.now() in the page):

- `submitted`: the click on Separate, before the upload;
- `first vocals segment`: the live endpoint's answer with segment 0 of `vocals` in the page (and,
  from Resource Timing, when that request was sent: how long it waited on the server);
- `first audible`: when the first scheduled frame of the stems left the output, from the Web Audio
  clock (AudioContext.getOutputTimestamp maps the context time of that frame to performance.now(),
  output latency included);
- `completed`: the job's `completed` event (separation, encoding, previews and the analysis).

Both are measured in the same run and their ratio printed, with the floor (first audible ≤ 10 s).
The job's own timings (load, separate, analyse) come from its record. The CPU and the load average
before and after are printed with the figures: on a shared machine the load moves them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _cpu import cpu_model
from _fixtures import build_model_folder, build_track
from _serve import ServeProcess

FLOOR_S = 10.0
CHROMIUM = "/usr/bin/chromium"
THREADS = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
LEGS = [("htdemucs", None), ("htdemucs_ft", "vocals")]

READ_TIMELINE = """() => {
    const timeline = window.musicsep.timeline;
    const segment = performance.getEntriesByType("resource")
        .find((entry) => /\\/stems\\/vocals\\/live\\/0\\?/.test(entry.name));
    return {
        submitted: timeline.submitted, started: timeline.started, completed: timeline.completed ?? null,
        firstVocals: timeline.live?.firstSegment?.vocals ?? null, playable: timeline.live?.playable ?? null,
        firstSound: timeline.live?.firstSound ?? null,
        segmentSent: segment ? segment.startTime : null, segmentDone: segment ? segment.responseEnd : null,
        jobId: window.musicsep.state.jobId,
    };
}"""


def run_leg(browser, url: str, track: Path, model: str, stem: str | None, timeout_s: float) -> dict:
    """One upload through the page; the page's timeline in seconds from the click on Separate."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url)
        page.wait_for_selector(f'#model option[value="{model}"]', state="attached")
        page.select_option("#model", model)
        if stem:
            page.check('input[name="mode"][value="choose"]')
            page.check(f'input[aria-label="Stem {stem}"]')
        page.set_input_files("#file", str(track))
        page.click("#submit")
        page.wait_for_function("window.musicsep.timeline.completed !== undefined", timeout=timeout_s * 1000)
        raw = page.evaluate(READ_TIMELINE)
    finally:
        context.close()
    if errors:
        raise SystemExit(f"the page failed: {errors}")
    if raw["firstSound"] is None or raw["firstSound"]["ms"] is None:
        raise SystemExit(f"{model}: nothing was heard before the job completed: {raw}")

    def since(ms: float | None) -> float | None:
        return None if ms is None else round((ms - raw["submitted"]) / 1000, 3)

    return {
        "job_id": raw["jobId"],
        "started": since(raw["started"]),
        "segment_sent": since(raw["segmentSent"]),
        "first_vocals_segment": since(raw["firstVocals"]),
        "playable": since(raw["playable"]),
        "first_audible": since(raw["firstSound"]["ms"]),
        "output_latency_s": raw["firstSound"].get("outputLatencyS"),
        "completed": since(raw["completed"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 30 s track instead of 3 minutes")
    parser.add_argument("--seconds", type=float, default=None, help="track length (overrides --quick)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds one job may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    seconds = args.seconds or (30.0 if args.quick else 180.0)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="musicsep-ttfa-"))
    try:
        repo = build_model_folder(work / "models", full_size=True, small=False, ft_bag=True)
        track = build_track(work / "track.wav", seconds)
        print(f"CPU: {cpu_model()}")
        print(f"track: {seconds:g} s, random-init full-size models, fp32, 2 torch threads; load {_load()}")
        env = {
            **THREADS,
            "MUSICSEP_MODEL_REPO": str(repo),
            "MUSICSEP_PRECISION": "fp32",
            "MUSICSEP_PRELOAD": json.dumps([model for model, _ in LEGS]),
        }
        server = ServeProcess(work / "data", env, model="htdemucs", startup_s=600, log=work / "serve.log")
        results = []
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"],
                )
                try:
                    for model, stem in LEGS:
                        leg = run_leg(browser, server.url, track, model, stem, args.timeout)
                        job = httpx.get(f"{server.url}/api/v1/jobs/{leg['job_id']}", timeout=30).json()
                        timings = job.get("timings", {})
                        leg["job_timings"] = {k: timings.get(k) for k in ("load_s", "separate_s", "analyze_s")}
                        results.append((model, stem, leg))
                        _report(model, stem, leg)
                finally:
                    browser.close()
        finally:
            server.stop()
        print(f"load after: {_load()}")
        verdicts = [leg["first_audible"] <= FLOOR_S for _, _, leg in results]
        verdict = "met" if all(verdicts) else "NOT met"
        print(f"floor (first audible <= {FLOOR_S:g} s): {verdict} in {sum(verdicts)} of {len(verdicts)} legs")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _report(model: str, stem: str | None, leg: dict) -> None:
    name = f"{model}{f' --stems {stem}' if stem else ' (all stems)'}"
    ratio = leg["first_audible"] / leg["completed"]
    print(f"\n{name}")
    print(f"  job started (page got `started`)   {leg['started']:8.2f} s")
    print(f"  vocals segment 0 asked / received  {leg['segment_sent']:8.2f} s / {leg['first_vocals_segment']:8.2f} s")
    print(f"  every stem's first segment in      {leg['playable']:8.2f} s")
    latency = leg["output_latency_s"]
    print(f"  first audible sample (Web Audio)   {leg['first_audible']:8.2f} s   (output latency {latency} s)")
    print(f"  whole job (`completed`)            {leg['completed']:8.2f} s   (server: {leg['job_timings']})")
    print(f"  ratio first audible / whole job    {ratio:8.3f}   ({1 / ratio:.1f}x sooner)")
    sys.stdout.flush()


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"bench wall {time.monotonic() - started:.0f} s")
