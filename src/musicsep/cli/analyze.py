"""`musicsep analyze FILE... [--json]`: tempo, key, loudness and duration of each file.

With `--json`, one JSON line per file on stdout (JSON Lines), in the order given: `input` (the
path as given, so a line says which file it is about even when files failed in between) and
the pinned `AnalysisResult`'s fields; otherwise a readable table: the key as musicians write it
(`Bb major`) and the tempo, each with its confidence, since a key or BPM without one cannot be
told from a guess. A bad file is reported on stderr and the others are still analysed; the exit
status is then that of the first failure (3 for bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_BAD_INPUT = 0, 3


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="tempo, key, loudness and duration of audio files",
        description="Analyse audio files: tempo and beats, key, loudness (BS.1770) and duration.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--json", action="store_true", help="one JSON line per file on stdout, its path as `input`")
    parser.set_defaults(func=run)


def _fmt(value: float | None, unit: str, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _tempo_cell(tempo) -> str:
    """BPM and confidence; a weak tempo also names its best other reading ("or 60.0")."""
    if tempo.bpm is None:
        return f"- ({tempo.reason})"
    cell = f"{tempo.bpm:.1f} ({tempo.confidence:.2f})"
    if tempo.alternatives:
        cell += f" or {tempo.alternatives[0].bpm:.1f}"
    return cell


def _row(name: str, result) -> list[str]:
    tempo, key, loudness = result.tempo, result.key, result.loudness
    return [
        name,
        _fmt(result.duration_s, " s"),
        _tempo_cell(tempo),
        f"{key.name} ({key.confidence:.2f})" if key.name else f"- ({key.reason})",
        _fmt(loudness.lufs, " LUFS"),
        _fmt(loudness.peak_dbfs, " dBFS"),
    ]


def _print_table(rows: list[list[str]]) -> None:
    header = ["file", "duration", "bpm (confidence)", "key (confidence)", "loudness", "peak"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def run(args: argparse.Namespace) -> int:
    from musicsep.config import get_settings
    from musicsep.model.analysis import analyze_file
    from musicsep.model.errors import MusicsepError

    max_duration_s = get_settings().max_duration_s
    status = EXIT_OK
    rows = []
    for path in args.files:
        if not path.is_file():
            print(f"musicsep: {path.name}: no such file", file=sys.stderr)
            status = status or EXIT_BAD_INPUT
            continue
        try:
            result = analyze_file(path, max_duration_s=max_duration_s)
        except MusicsepError as exc:
            print(f"musicsep: {path.name}: {exc.message}", file=sys.stderr)
            status = status or exc.exit_code
            continue
        if args.json:
            print(json.dumps({"input": str(path), **json.loads(result.model_dump_json())}), flush=True)
        else:
            rows.append(_row(path.name, result))
    if rows:
        _print_table(rows)
    return status
