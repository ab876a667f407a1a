"""`musicsep analyze`: JSON Lines in the order given, a table for people, exit 3 on bad input."""

from __future__ import annotations

import json

import numpy as np
import soundfile

from musicsep.cli import main
from musicsep.model.analysis import AnalysisResult

SR = 22050


def write_clip(path, seconds: float, bpm: float = 120.0):
    """A 120 BPM click on a C major chord: enough for a tempo and a key."""
    t = np.arange(int(seconds * SR)) / SR
    chord = sum(np.sin(2 * np.pi * 261.63 * 2 ** (s / 12) * t) for s in (0, 4, 7)) * 0.1
    clicks = np.zeros_like(t)
    blip = np.sin(2 * np.pi * 1000 * t[: int(0.03 * SR)]) * np.exp(-t[: int(0.03 * SR)] / 0.008)
    for beat in np.arange(0, seconds, 60.0 / bpm):
        start = int(beat * SR)
        clicks[start : start + blip.size] += blip[: clicks.size - start]
    soundfile.write(path, np.stack([chord + 0.5 * clicks] * 2, axis=1), SR)
    return path


def test_json_lines_in_the_order_given(tmp_path, capsys):
    long_clip = write_clip(tmp_path / "long.wav", 8.0)
    short_clip = write_clip(tmp_path / "short.wav", 2.0)
    assert main(["analyze", "--json", str(long_clip), str(short_clip)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line.pop("input") for line in lines] == [str(long_clip), str(short_clip)]
    results = [AnalysisResult.model_validate(line) for line in lines]
    assert [round(r.duration_s) for r in results] == [8, 2]
    assert abs(results[0].tempo.bpm - 120.0) < 2.4
    assert results[1].tempo.bpm is None and "too short" in results[1].tempo.reason
    assert lines[1]["key"]["label"] is None


def test_table_for_people(tmp_path, capsys):
    clip = write_clip(tmp_path / "song.wav", 8.0)
    assert main(["analyze", str(clip)]) == 0
    out = capsys.readouterr().out
    assert "song.wav" in out and "LUFS" in out and "bpm" in out


def test_bad_files_are_reported_and_the_rest_analysed(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all")
    good = write_clip(tmp_path / "good.wav", 6.0)
    code = main(["analyze", "--json", str(text), str(tmp_path / "missing.wav"), str(good)])
    captured = capsys.readouterr()
    assert code == 3
    assert len(captured.out.splitlines()) == 1  # the good file still came out
    assert "notes.txt" in captured.err and "missing.wav" in captured.err
    assert str(tmp_path) not in captured.err  # no server paths in messages


def test_each_json_line_names_its_input_so_lines_after_a_bad_file_are_not_misread(tmp_path, capsys):
    first = write_clip(tmp_path / "first.wav", 2.0)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    last = write_clip(tmp_path / "last.wav", 2.0)
    assert main(["analyze", "--json", str(first), str(broken), str(last)]) == 3
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["input"] for line in lines] == [str(first), str(last)]
