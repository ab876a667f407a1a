"""Separate one file into stem files, chunk by chunk, with constant memory.

decode (blocks → disk spill + running statistics) → stream the separator over the spill →
write every stem incrementally. The Demucs CLI's results are reproduced: the same whole-track
normalisation, `apply_model`'s overlap-add, the same two-stem `add` method and clip modes.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicsep.model.audio import FORMATS, StemWriter, decode_blocks, probe
from musicsep.model.demucs_stream import PassOptions
from musicsep.model.errors import Cancelled, InvalidOptions, storage_full_is_typed
from musicsep.model.live import LiveSink, LiveTap
from musicsep.model.progress import ProgressCallback, ProgressTracker
from musicsep.model.spill import TrackSpill


@dataclass
class SeparationRequest:
    model: str = "htdemucs"
    stems: list[str] | None = None  # a subset of the model's sources; None = all
    two_stems: str | None = None  # `vocals` → vocals + no_vocals, like Demucs's --two-stems
    other_method: str = "add"  # two-stem complement: Demucs's `add` (sum of the rest) or `minus`
    format: str = "wav16"
    clip: str = "rescale"
    bitrate: int = 320
    shifts: int = 0
    overlap: float = 0.25
    segment: float | None = None
    batch_size: int = 1
    device: str = "auto"
    precision: str = "fp32"
    #: Models whose stems are combined (docs/models.md "Ensembles"); `model` is then ignored.
    ensemble: list[str] | None = None
    ensemble_method: str = "avg_wave"  # avg_wave, median_wave, max_spec, min_spec
    ensemble_weights: list[float] | None = None  # one per ensemble model; None: equal


@dataclass
class SeparationResult:
    model: str  # what actually ran
    stems: dict[str, Path]
    samplerate: int
    duration_s: float
    frames: int
    device: str
    precision: str
    timings: dict[str, float] = field(default_factory=dict)
    requested_model: str = ""
    #: Why `model` differs from `requested_model`, or what recovery happened; None when neither.
    fallback_reason: str | None = None


@dataclass(frozen=True)
class StemPlan:
    compute: list[str]  # sources the separator must produce
    outputs: list[str]  # files written, in order


def stems_to_load(request: SeparationRequest) -> list[str] | None:
    """The sources a request needs computed, known before the model is loaded (None: all)."""
    if request.stems:
        return list(request.stems)
    if request.two_stems is not None and request.other_method == "minus":
        return [request.two_stems]
    return None


def load_separator(loader, request: SeparationRequest):
    """`(separator, fallback_reason)` for a request: an ensemble of `request.ensemble` (no fallback:
    a missing member is the user's to fix), else `request.model` through the fallback chain."""
    if request.ensemble:
        return loader.ensemble(
            request.ensemble,
            request.ensemble_method,
            request.ensemble_weights,
            device=request.device,
            precision=request.precision,
        ), None
    return loader.resolve(
        request.model, device=request.device, precision=request.precision, stems=stems_to_load(request)
    )


def plan_stems(sources: list[str], request: SeparationRequest) -> StemPlan:
    """Which sources to compute and which files to write; refuses stems the model lacks.

    Two-stem mode on a two-stem model (vocals + instrumental): `no_vocals` is the model's own
    instrumental with `add` (the sum of the other stems is that one stem), mix minus vocals with
    `minus`; docs/models.md, "Stems"."""
    if request.two_stems is not None and request.stems:
        raise InvalidOptions("choose either a list of stems or two-stem mode, not both")
    wanted = [request.two_stems] if request.two_stems else list(request.stems or sources)
    unknown = [stem for stem in wanted if stem not in sources]
    if unknown:
        raise InvalidOptions(f"stem '{unknown[0]}' is not produced by this model; it produces: {', '.join(sources)}")
    if request.two_stems is None:
        return StemPlan(wanted, wanted)
    stem = request.two_stems
    if request.other_method == "minus":
        return StemPlan([stem], [stem, f"no_{stem}"])
    return StemPlan([stem] + [s for s in sources if s != stem], [stem, f"no_{stem}"])


def _check_options(separator, request: SeparationRequest) -> None:
    if request.format not in FORMATS:
        raise InvalidOptions(f"unknown format '{request.format}'; choose one of {', '.join(FORMATS)}")
    if not 0 <= request.overlap < 1:
        raise InvalidOptions("overlap must be at least 0 and below 1")
    if not 0 <= request.shifts <= 20:
        raise InvalidOptions("shifts must be between 0 and 20")
    if request.batch_size < 1:
        raise InvalidOptions("batch size must be at least 1")
    if request.other_method not in ("add", "minus"):
        raise InvalidOptions("other_method must be 'add' or 'minus'")
    if request.segment is not None:
        limit = getattr(separator, "max_segment", float("inf"))
        if not 0.1 <= request.segment <= limit:
            raise InvalidOptions(f"segment must be between 0.1 and {limit:.2f} seconds for this model")


def separate_file(
    input_path: Path,
    output_dir: Path,
    request: SeparationRequest,
    *,
    loader,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    max_duration_s: float | None = None,
    live: LiveSink | None = None,
) -> SeparationResult:
    """Separate `input_path` into `output_dir/<stem>.<ext>`; see docs/architecture.md.

    `live` receives every stem's finished samples as they are written (model/live.py), before
    the files are encoded: what the service spools for readers while the job runs."""
    started = time.monotonic()
    separator, fallback_reason = load_separator(loader, request)
    recoveries_before = len(getattr(separator, "recoveries", ()))
    loaded = time.monotonic()
    _check_options(separator, request)
    plan = plan_stems(separator.sources, request)
    output_dir = Path(output_dir)
    tracker = ProgressTracker(on_progress)

    def checkpoint() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("the separation was cancelled")

    def on_chunk() -> None:
        tracker.chunk_done()
        checkpoint()

    fmt = FORMATS[request.format]
    timings = {"load_s": loaded - started}
    with storage_full_is_typed():  # the spill's own writes are typed in TrackSpill
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".decoded-", delete=False) as handle:
            spill = TrackSpill(Path(handle.name), separator.audio_channels)
    try:
        claimed = probe(input_path).duration_s
        expected = max(1, int((claimed or 0) * separator.samplerate))

        def on_block(frames: int) -> None:
            tracker.report("decode", frames / expected)
            checkpoint()

        spill.fill(
            decode_blocks(
                input_path,
                samplerate=separator.samplerate,
                channels=separator.audio_channels,
                max_duration_s=max_duration_s,
            ),
            on_block,
        )
        decoded = time.monotonic()
        timings["decode_s"] = decoded - loaded
        mean, std = spill.stats() if separator.normalize else (0.0, 1.0)
        spill.normalize(mean, std)
        options = PassOptions(
            shifts=request.shifts, overlap=request.overlap, segment=request.segment, batch_size=request.batch_size
        )
        if getattr(separator, "needs_track_stats", False):  # an ensemble normalises per member
            run = separator.prepare(spill.frames, plan.compute, options, stats=spill.stats())
        else:
            run = separator.prepare(spill.frames, plan.compute, options)
        tracker.chunks = run.chunks
        tap = LiveTap(live, request.clip) if live is not None else None
        if tap is not None:
            tap.begin(separator.samplerate, separator.audio_channels, list(plan.outputs), spill.frames)
        with contextlib.ExitStack() as stack:
            writers = {
                name: stack.enter_context(
                    StemWriter(
                        output_dir / f"{name}.{fmt.extension}",
                        fmt,
                        separator.samplerate,
                        separator.audio_channels,
                        request.clip,
                        request.bitrate,
                    )
                )
                for name in plan.outputs
            }
            position = 0
            for block in run.blocks(spill, on_chunk):
                # Demucs: out * std + mean, in float32.
                block = block * np.float32(std) + np.float32(mean)
                outputs = _output_blocks(plan, request, block, spill, position)
                for name, samples in outputs.items():
                    writers[name].write(samples)
                if tap is not None:
                    tap.write(outputs)
                position += block.shape[-1]
            if tap is not None:
                tap.end()
            separated = time.monotonic()
            timings["separate_s"] = separated - decoded
            tracker.report("encode", 0.0)
            paths = {}
            for index, (name, writer) in enumerate(writers.items(), start=1):
                checkpoint()
                paths[name] = writer.close()
                tracker.report("encode", index / len(writers))
        timings["encode_s"] = time.monotonic() - separated
        timings["total_s"] = time.monotonic() - started
        tracker.finish()
        notes = [fallback_reason] if fallback_reason else []
        notes += list(getattr(separator, "recoveries", ()))[recoveries_before:]
        return SeparationResult(
            model=separator.name,
            stems=paths,
            samplerate=separator.samplerate,
            duration_s=spill.frames / separator.samplerate,
            frames=spill.frames,
            device=str(getattr(separator, "device", "cpu")),
            precision=getattr(separator, "precision", "fp32"),
            timings=timings,
            requested_model=separator.name if request.ensemble else request.model,
            fallback_reason="; ".join(notes) or None,
        )
    except BaseException:
        for name in plan.outputs:
            (output_dir / f"{name}.{fmt.extension}").unlink(missing_ok=True)
        raise
    finally:
        spill.close()


def _output_blocks(
    plan: StemPlan, request: SeparationRequest, block: np.ndarray, spill: TrackSpill, position: int
) -> dict[str, np.ndarray]:
    """{output stem: its `(channels, n)` samples} of one engine block, in `plan.outputs` order."""
    stems = dict(zip(plan.compute, block, strict=True))
    if request.two_stems is None:
        return {name: stems[name] for name in plan.outputs}
    stem = request.two_stems
    if request.other_method == "minus":
        mix = spill.read_raw(position, position + block.shape[-1])
        return {stem: stems[stem], f"no_{stem}": mix - stems[stem]}
    rest = [stems[name] for name in plan.compute if name != stem]
    return {stem: stems[stem], f"no_{stem}": np.sum(rest, axis=0, dtype=np.float32)}
