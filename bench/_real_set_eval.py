"""The real dev set's part of bench/analysis_eval.py (`--real MANIFEST`).

Each item of bench/real_set/manifest.json is a real recording with a tempo and/or a key label and
the label's source; its excerpt lies in ~/.cache/musicsep-realset/audio/ once
bench/real_set/materialise.py has brought it from the fetched mirrors. This module analyses every
item with musicsep (`analyze_file`) and with the seed recipe (the same `seed_recipe` the synthetic
part uses, on librosa.load at 22.05 kHz) and prints the scores, the drumless subset's tempo
coverage and Accuracy2, and one line per item so every miss is visible.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REAL_SET = Path(__file__).resolve().parent / "real_set"


def load_items(manifest: Path) -> list[dict]:
    """The manifest's items with their audio path; materialises what the cache lacks (exit 2 if
    a mirror is missing: the message names the `fetch` sources)."""
    sys.path.insert(0, str(REAL_SET))
    from materialise import audio_path, materialise

    items = json.loads(manifest.read_text())["items"]
    if any(not audio_path(item).exists() for item in items):
        problems = materialise(items)
        if problems:
            print("\n".join(problems))
            raise SystemExit(2)
    return [{**item, "wav": str(audio_path(item))} for item in items]


def evaluate_item(item: dict) -> dict:
    """musicsep's and the seed recipe's (bpm, key) on one real excerpt."""
    import librosa

    from analysis_eval import EVAL_RATE, seed_recipe
    from musicsep.model.analysis import analyze_file

    ours = analyze_file(item["wav"])
    mono, samplerate = librosa.load(item["wav"], sr=EVAL_RATE, mono=True)
    return {
        "id": item["id"],
        "musicsep": (ours.tempo.bpm, ours.key.label, ours.tempo.confidence, ours.key.confidence),
        "seed": seed_recipe(mono, samplerate),
    }


def _fmt_bpm(bpm: float | None) -> str:
    return "-" if bpm is None else f"{bpm:.1f}"


def agreed(source: str | None) -> bool:
    return bool(source) and source.startswith("estimators-agree")


def half(item_id: str) -> str:
    """The item's fixed half of the dev set, A or B, by the parity of its id's SHA-1's first byte
    (as bench/key_eval_halves.py): a change fitted to the set's items rather than to music shows
    as a gain on one half and a loss on the other."""
    return "AB"[hashlib.sha1(item_id.encode()).digest()[0] % 2]


# The subsets the label sources make: the published labels involve no estimator; the agreement
# labels are Essentia's and madmom's (librosa's beat tracker, the seed recipe's own tempo, does not
# vote: with it the seed was right on every agreement label by construction). Both are printed
# beside the whole set, so a method that only matches the estimators shows; so are the two fixed
# halves. Each predicate sees the item and the label's source.
SUBSETS: dict[str, Callable[[dict, str | None], bool]] = {
    "all": lambda item, source: True,
    "published labels": lambda item, source: not agreed(source),
    "estimators-agree": lambda item, source: agreed(source),
    "half A": lambda item, source: half(item["id"]) == "A",
    "half B": lambda item, source: half(item["id"]) == "B",
}


def real_scores(
    items: list[dict],
    results: dict[str, dict],
    accuracy1: Callable[[float | None, float], bool],
    accuracy2: Callable[[float | None, float], bool],
    key_score: Callable[[str | None, str], float],
    subset: str = "all",
) -> dict[str, dict[str, float]]:
    """Per method: Accuracy1/2 on the tempo items, MIREX on the key items, and the drumless tempo
    items' coverage (a tempo at all) and Accuracy2; only the labels of `subset` (SUBSETS) count."""
    keep = SUBSETS[subset]
    tempo_items = [i for i in items if i["tempo"] is not None and keep(i, i["tempo_source"])]
    key_items = [i for i in items if i["key"] is not None and keep(i, i["key_source"])]
    drumless = [i for i in tempo_items if not i["has_drums"]]
    scores = {}
    for method in ("musicsep", "seed"):
        bpm = {i["id"]: results[i["id"]][method][0] for i in tempo_items}
        scores[method] = {
            "tempo_n": len(tempo_items),
            "key_n": len(key_items),
            "acc1": _mean([accuracy1(bpm[i["id"]], i["tempo"]) for i in tempo_items]),
            "acc2": _mean([accuracy2(bpm[i["id"]], i["tempo"]) for i in tempo_items]),
            "mirex": _mean([key_score(results[i["id"]][method][1], i["key"]) for i in key_items]),
            "drumless_coverage": _mean([bpm[i["id"]] is not None for i in drumless]),
            "drumless_acc2": _mean([accuracy2(bpm[i["id"]], i["tempo"]) for i in drumless]),
        }
    return scores


def _mean(values: list) -> float:
    return float(np.mean(values)) if values else float("nan")


def print_items(
    items: list[dict],
    results: dict[str, dict],
    accuracy1: Callable[[float | None, float], bool],
    accuracy2: Callable[[float | None, float], bool],
    key_score: Callable[[str | None, str], float],
) -> None:
    """One line per item: label, musicsep's reading, the seed's; '=' Accuracy1, '~' only Accuracy2,
    'x' wrong; a key's MIREX score after it."""

    def mark(bpm: float | None, reference: float | None) -> str:
        if reference is None:
            return " "
        return "=" if accuracy1(bpm, reference) else "~" if accuracy2(bpm, reference) else "x"

    def key_cell(label: str | None, reference: str | None) -> str:
        return f"{label or '-'}" + ("" if reference is None else f" ({key_score(label, reference):.1f})")

    print("\nper item ('=' Accuracy1, '~' Accuracy2 only, 'x' miss; key with its MIREX score; D = drums):")
    width = max(len(item["id"]) for item in items) + 1
    print(f"  {'id':<{width}}{'D':<2}{'label':>20}  | {'musicsep':<26}| seed")
    for item in items:
        ours, seed = results[item["id"]]["musicsep"], results[item["id"]]["seed"]
        label = f"{_fmt_bpm(item['tempo'])} {item['key'] or '-'}"
        ours_cell = f"{_fmt_bpm(ours[0])}{mark(ours[0], item['tempo'])} {key_cell(ours[1], item['key'])}"
        seed_cell = f"{_fmt_bpm(seed[0])}{mark(seed[0], item['tempo'])} {key_cell(seed[1], item['key'])}"
        drums = "D" if item["has_drums"] else "-"
        print(f"  {item['id']:<{width}}{drums:<2}{label:>20}  | {ours_cell:<26}| {seed_cell}")


def describe(items: list[dict]) -> str:
    tempo = [i for i in items if i["tempo"] is not None]
    published = sum(not i["tempo_source"].startswith("estimators-agree") for i in tempo)
    keys = [i for i in items if i["key"] is not None]
    key_published = sum(not i["key_source"].startswith("estimators-agree") for i in keys)
    drumless = sum(not i["has_drums"] for i in tempo)
    return (
        f"real dev set: {len(items)} items, {len(tempo)} with a tempo ({published} published, "
        f"{len(tempo) - published} estimators-agree; {drumless} without drums), {len(keys)} with a key "
        f"({key_published} published, {len(keys) - key_published} estimators-agree)"
    )
