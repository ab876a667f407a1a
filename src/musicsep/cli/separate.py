"""`musicsep separate`: the Demucs CLI's job, streamed. Pinned interface: other tools drive it.

Exit codes (`EXIT_CODES`, also in --help): 0 ok, 2 usage error, 3 bad input (any file), 4 model
unavailable, 5 disk full.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import get_args

from musicsep.protocol import ENSEMBLE_METHODS, OUTPUT_FORMATS, ClipMode, OtherMethod

EXIT_OK, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_MODEL = 0, 2, 3, 4
EXIT_CODES = (
    "Exit status: 0 ok; 2 usage error; 3 bad input (any file: the others still run); 4 model unavailable "
    "(after the fallback chain, MUSICSEP_FALLBACK); 5 disk full."
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "separate",
        help="separate audio files into stems",
        description="Separate audio files into stems.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("-m", "--model", default=None, help="model name (default: htdemucs)")
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("separated"),
        help="output folder; stems go to OUT/<model that ran>/<track>/<stem>.<ext> (with a fallback, "
        "the fallback's name); inputs of one name (a/mix.wav, b/mix.flac) go to <track>, <track> (2), ...",
    )
    stems = parser.add_mutually_exclusive_group()
    stems.add_argument("--stems", default=None, help="comma-separated subset, e.g. vocals,drums")
    stems.add_argument(
        "--two-stems", default=None, metavar="STEM", help="STEM and no_STEM (e.g. vocals → vocals + no_vocals)"
    )
    parser.add_argument(
        "--other-method",
        choices=get_args(OtherMethod),
        default="add",
        help="two-stem complement: sum of the other stems (Demucs's default) or "
        "mix minus STEM (skips bag members that only make the others)",
    )
    parser.add_argument("--format", default="wav16", choices=OUTPUT_FORMATS)
    parser.add_argument("--clip", default="rescale", choices=get_args(ClipMode))
    parser.add_argument("--bitrate", type=int, default=320, help="kbps for mp3/ogg")
    parser.add_argument(
        "--shifts", type=int, default=0, help="random time shifts averaged (Demucs's CLI uses 1; 0 is repeatable)"
    )
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--segment", type=float, default=None, help="segment length in seconds")
    parser.add_argument("--device", default=None, choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--batch-size", type=int, default=None, help="segments per forward pass")
    parser.add_argument(
        "--runtime",
        default=None,
        choices=["auto", "torch", "openvino", "onnxruntime"],
        help="CPU inference runtime of MDX-Net (ONNX), HTDemucs and RoFormer models (default MUSICSEP_RUNTIME, "
        "auto: measured once per model and CPU, then cached); docs/performance.md",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help="CPU forward passes in flight at once, threads split between them "
        "(faster on small or busy CPUs; each holds a segment: +0.7 GB for htdemucs)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model first (slow to start: minutes on CPU; the "
        "time is printed; pays off only for long batches of tracks)",
    )
    parser.add_argument(
        "--ensemble",
        default=None,
        metavar="A,B[,C,D]",
        help="2 to 4 models whose stems are combined (instead of -m); docs/models.md",
    )
    parser.add_argument(
        "--ensemble-method",
        default="avg_wave",
        choices=list(ENSEMBLE_METHODS),
        help="how the ensemble combines its models (default avg_wave)",
    )
    parser.add_argument(
        "--ensemble-weights",
        default=None,
        metavar="W1,W2",
        help="one weight per ensemble model (avg_wave only); equal if absent",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per file on stdout, nothing else there (without it: one line per file "
        "saying where its stems went)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from musicsep.config import get_settings
    from musicsep.model.errors import MusicsepError
    from musicsep.model.loading import ModelLoader
    from musicsep.model.separate import SeparationRequest, load_separator

    settings = get_settings()
    if args.runtime is not None:
        settings = settings.model_copy(update={"runtime": args.runtime})
    ensemble = _names(args.ensemble)
    try:
        weights = [float(w) for w in _names(args.ensemble_weights) or ()] or None
    except ValueError:
        print("musicsep: --ensemble-weights takes numbers, e.g. 2,1", file=sys.stderr)
        return EXIT_USAGE
    if weights is not None and ensemble is None:
        print("musicsep: --ensemble-weights needs --ensemble", file=sys.stderr)
        return EXIT_USAGE
    if ensemble is not None and args.model:
        print("musicsep: give either -m or --ensemble, not both", file=sys.stderr)
        return EXIT_USAGE
    request = SeparationRequest(
        model=args.model or settings.default_model,
        stems=[s.strip() for s in args.stems.split(",") if s.strip()] if args.stems else None,
        two_stems=args.two_stems,
        other_method=args.other_method,
        format=args.format,
        clip=args.clip,
        bitrate=args.bitrate,
        shifts=args.shifts,
        overlap=args.overlap,
        segment=args.segment,
        batch_size=args.batch_size or settings.batch_size,
        device=args.device or settings.device,
        precision=args.precision or settings.precision,
        ensemble=ensemble,
        ensemble_method=args.ensemble_method,
        ensemble_weights=weights,
    )
    loader = ModelLoader.from_settings(settings)
    load_started = time.monotonic()
    try:
        separator, fallback_reason = load_separator(loader, request)
    except MusicsepError as exc:
        print(f"musicsep: {exc.message}", file=sys.stderr)
        return exc.exit_code
    model_load_s = time.monotonic() - load_started  # once per process; files after share the model
    if fallback_reason:
        print(f"musicsep: {fallback_reason}", file=sys.stderr)
    choice = getattr(separator, "runtime_choice", None)
    if choice is not None:  # what `auto` measured, or that it read a cached choice
        print(f"musicsep: {separator.name}: {choice.describe()}", file=sys.stderr)
    if args.jobs is not None and args.jobs < 1:
        print("musicsep: --jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.jobs is not None and hasattr(separator, "jobs"):
        separator.jobs = args.jobs
    if args.compile and hasattr(separator, "compiled"):
        from musicsep.model.compile import compile_separator

        seconds = compile_separator(separator, request.segment, request.batch_size)
        print(f"musicsep: compiled {separator.name} in {seconds:.1f} s", file=sys.stderr)
    if ensemble is not None:
        request.model = separator.name
    status = EXIT_OK
    model_folder = args.out / separator.name  # what runs, e.g. `dsp` after a fallback, or `A+B`
    for path, track in zip(args.files, track_names(args.files), strict=True):
        code = _separate_one(path, model_folder / track, args, request, loader, settings.max_duration_s, model_load_s)
        if code == EXIT_USAGE or code == EXIT_MODEL:
            return code
        status = status or code
    return status


def _names(text: str | None) -> list[str] | None:
    """A comma-separated option as a list (None when absent or empty)."""
    items = [item.strip() for item in text.split(",") if item.strip()] if text else []
    return items or None


def track_names(paths: list[Path]) -> list[str]:
    """One output folder name per input: its file name without the extension, and `NAME (2)`,
    `NAME (3)`... for later inputs of the same name, so that no input's stems overwrite another's.

    Names are compared case-folded, because on macOS and Windows `Mix` and `mix` are one folder.
    They depend on the inputs only (not on which of them fail), so a script can tell where each went.
    """
    taken: set[str] = set()
    names = []
    for path in paths:
        stem = path.name.rsplit(".", 1)[0] if "." in path.name else path.name
        name, count = stem, 1
        while name.casefold() in taken:
            count += 1
            name = f"{stem} ({count})"
        taken.add(name.casefold())
        names.append(name)
    return names


def _separate_one(path: Path, out_dir: Path, args, request, loader, max_duration_s: float, model_load_s: float) -> int:
    from tqdm import tqdm

    from musicsep.model.errors import MusicsepError
    from musicsep.model.separate import separate_file

    if not path.is_file():
        problem = "not a regular file" if path.exists() else "no such file"
        print(f"musicsep: {path}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with tqdm(
        total=100.0,
        desc=path.name,
        unit="%",
        file=sys.stderr,
        leave=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
        disable=not sys.stderr.isatty() and args.json,
    ) as bar:

        def on_progress(report) -> None:
            bar.update(report.percent - bar.n)
            eta = f"eta {report.eta_s:.0f}s" if report.eta_s is not None else ""
            bar.set_postfix_str(f"{report.stage} {report.chunk}/{report.chunks} {eta}", refresh=False)

        try:
            result = separate_file(
                path, out_dir, request, loader=loader, on_progress=on_progress, max_duration_s=max_duration_s
            )
        except MusicsepError as exc:
            bar.close()
            print(f"musicsep: {path.name}: {exc.message}", file=sys.stderr)
            return exc.exit_code
    if args.json:
        print(
            json.dumps(
                {
                    "input": str(path),
                    "model": result.model,
                    "requested_model": result.requested_model,
                    "fallback_reason": result.fallback_reason,
                    "device": result.device,
                    "precision": result.precision,
                    "samplerate": result.samplerate,
                    "duration_s": round(result.duration_s, 6),
                    "stems": {name: str(p) for name, p in result.stems.items()},
                    "timings": {k: round(v, 4) for k, v in result.timings.items()},
                    "model_load_s": round(model_load_s, 4),
                }
            ),
            flush=True,
        )
    else:
        print(f"{path}: {', '.join(result.stems)} in {out_dir}{os.sep}", flush=True)
    return EXIT_OK
