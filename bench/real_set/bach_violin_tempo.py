"""The bach-violin items' tempo over their excerpt, from the dataset's own score alignment.

    python bench/real_set/bach_violin_tempo.py

salu133445/bach-violin-dataset ships, per movement, the score as notes (onset in 1/24 quarter)
and the estimated alignment of each note to the recording (start in seconds). Its tempos/*.txt
is one average over the whole movement (repeats, ritardandi and all), which is not the tempo of a
30 s excerpt, so the label is the least-squares slope of score position over audio time for the
notes that start inside the excerpt. candidates.json divides it to the beat the time signature
gives (its tempo_level says which). Prints quarters per minute over the excerpt and per 10 s,
and the median of the quarter-to-quarter tempo (the time the alignment puts between consecutive
quarter positions): where a performance lengthens some beats (a Menuet's phrasing), the slope, its
mean, lies above what most of the beats measure.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from materialise import CANDIDATES, blob  # noqa: E402

REPO = "salu133445/bach-violin-dataset"


def excerpt_qpm(commit: str, collection: str, name: str, end_s: float) -> tuple[float, list[float], float]:
    def table(kind: str) -> list[dict]:
        return list(
            csv.DictReader(io.StringIO(blob(REPO, commit, f"bach-violin/{kind}/{collection}/{name}.csv").decode()))
        )

    quarters = np.array([int(row["onset"]) / 24 for row in table("notes")])
    starts = np.array([float(row["start"]) for row in table("alignments")])
    inside = starts < end_s
    windows = [
        60 * np.polyfit(starts[(starts >= a) & (starts < a + 10)], quarters[(starts >= a) & (starts < a + 10)], 1)[0]
        for a in np.arange(0.0, end_s, 10.0)
    ]
    positions, first = np.unique(quarters[inside], return_index=True)
    times = starts[inside][first]
    grid = np.arange(np.ceil(positions[0]), np.floor(positions[-1]) + 1)
    quarter_to_quarter = 60 / np.diff(np.interp(grid, positions, times))
    return 60 * float(np.polyfit(starts[inside], quarters[inside], 1)[0]), windows, float(np.median(quarter_to_quarter))


def main() -> int:
    for item in json.loads(CANDIDATES.read_text())["candidates"]:
        if item["repo"] != REPO or not item["path"].startswith("bach-violin/audio/"):
            continue
        collection, name = item["path"].split("/")[2], Path(item["path"]).stem
        excerpt = item["excerpt"] or {"start_s": 0.0, "duration_s": 30.0}
        qpm, windows, median = excerpt_qpm(item["commit"], collection, name, excerpt["start_s"] + excerpt["duration_s"])
        print(
            f"{item['id']:<46} {qpm:7.2f} qpm (per 10 s: {', '.join(f'{w:.1f}' for w in windows)}; "
            f"quarter to quarter median {median:.1f}) -> "
            f"label {item['tempo']} ({item['tempo_level']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
