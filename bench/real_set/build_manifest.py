"""Write manifest.json from candidates.json and the estimators' raw outputs in the cache.

    python bench/real_set/materialise.py --candidates     # cut every candidate's excerpt
    (run the three estimator scripts, estimators/README.md)
    python bench/real_set/build_manifest.py              # label, drop the unlabelled, write

A candidate's published label is kept with its source and checked for plausibility (some
estimator reads it within 4 % at x1, x2, x1/2, x3 or x1/3; a published key is not second-guessed
but the estimators' readings stay beside it). A label it lacks is taken only where the estimators
agree: tempo when Essentia's RhythmExtractor2013 and madmom's BPM lie within 4 % of each other (the
label is their mean), key when Essentia's KeyExtractor and madmom's CNN name the same key. librosa's
beat tracker runs too, but its reading does not vote: it is the seed recipe's tempo, so labels that
needed its agreement hand the seed every such item by construction (measured: seed Accuracy1 1.000
on the 54 three-way labels); `librosa_agrees` records whether it would have. No agreement tempo
under 5 s (musicsep's stated floor for a tempo). A candidate with neither a tempo nor a key is
left out.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from materialise import MANIFEST, MIRRORS, audio_path, resolved_candidates  # noqa: E402

ESTIMATES = Path.home() / ".cache" / "musicsep-realset" / "estimators"
TOLERANCE = 0.04
MIN_TEMPO_S = 5.0
VOTERS = ("essentia", "madmom")
SHARPS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Spelled as key signatures are written (docs/analysis.md): the fewer accidentals, Eb minor for D# minor.
MAJOR = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")


def spelled(sharp_label: str) -> str:
    tonic, mode = sharp_label.split()
    names = MAJOR if mode == "major" else MINOR
    return f"{names[SHARPS.index(tonic)]} {mode}"


def _load(name: str) -> dict:
    path = ESTIMATES / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _close(a: float, b: float) -> bool:
    return abs(a / b - 1.0) <= TOLERANCE


def agreed_tempo(bpms: list[float | None]) -> float | None:
    """The mean of the voting estimators' BPM when all are there and within 4 % of each other."""
    if len(bpms) < 2 or any(b is None for b in bpms):
        return None
    return round(statistics.mean(bpms), 2) if max(bpms) / min(bpms) <= 1.0 + TOLERANCE else None


def plausible(tempo: float, bpms: list[float | None]) -> bool:
    return any(_close(b, tempo * k) for b in bpms if b for k in (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0))


def label(item: dict, estimates: dict[str, dict]) -> dict:
    """The manifest entry: published labels kept, missing ones from agreement, estimates beside."""
    bpms = [estimates[name].get("bpm") for name in ("librosa", "essentia", "madmom") if name in estimates]
    keys = [estimates[name].get("key") for name in ("essentia", "madmom") if name in estimates]
    labels = ("tempo", "tempo_source", "tempo_level", "key", "key_source")
    entry = {k: v for k, v in item.items() if k not in labels}
    import soundfile

    duration = round(soundfile.info(str(audio_path(item))).duration, 2)
    tempo, tempo_source = item["tempo"], item["tempo_source"]
    voting = [estimates[name].get("bpm") for name in VOTERS if name in estimates]
    if tempo is None and duration >= MIN_TEMPO_S and (agreed := agreed_tempo(voting)) is not None:
        tempo, tempo_source = (
            agreed,
            "estimators-agree: essentia,madmom (librosa's beat_track, the seed's tempo, not voting)",
        )
    key, key_source = item["key"], item["key_source"]
    if key is None and len(keys) == 2 and None not in keys and keys[0] == keys[1]:
        key, key_source = spelled(keys[0]), "estimators-agree: essentia,madmom (librosa has no key estimator)"
    entry.update(
        duration_s=duration,
        tempo=tempo,
        tempo_source=tempo_source,
        tempo_level=item["tempo_level"],
        tempo_plausible=None if tempo is None else plausible(tempo, bpms),
        librosa_agrees=None
        if tempo is None or "librosa" not in estimates
        else _close(estimates["librosa"].get("bpm") or 1e-9, tempo),
        key=key,
        key_source=key_source,
        estimates={
            name: {k: v for k, v in estimates[name].items() if k in ("bpm", "key", "dbn_bpm", "error")}
            for name in sorted(estimates)
        },
    )
    return entry


def _family(genre: str) -> str:
    """A coarse genre family for the composition table (the manifest keeps each item's own genre)."""
    genre = genre.lower()
    for family, words in (
        ("classical", ("classical", "baroque")),
        ("jazz/blues/swing", ("jazz", "blues", "swing", "bop")),
        ("solo voice", ("vocal",)),
        ("folk/solo guitar", ("folk", "guitar")),
        ("electronic/dance", ("electro", "edm", "house", "techno", "trance", "dance", "disco", "drum machine")),
        ("hip-hop/rap", ("hip", "rap")),
        ("latin/world", ("latin", "salsa", "samba", "cumbia", "bossa", "afro", "reggae", "dub", "bolero", "carnatic")),
        ("rock/metal/punk", ("rock", "metal", "punk")),
        ("pop/soul/funk/country", ("pop", "soul", "funk", "gospel", "doo", "country", "songwriter")),
        ("drums/percussion", ("drums", "percussion")),
    ):
        if any(word in genre for word in words):
            return family
    return "other/unknown"


def _source_kind(source: str) -> str:
    return source.split(":")[0]


def summary(items: list[dict]) -> str:
    """Counts by genre family, drums and label source: what docs/analysis.md reports as the composition."""
    from collections import Counter

    tempo = [i for i in items if i["tempo"] is not None]
    keys = [i for i in items if i["key"] is not None]
    lines = [
        f"{len(items)} items: {len(tempo)} tempo ({sum(not i['has_drums'] for i in tempo)} without drums), "
        f"{len(keys)} key"
    ]
    for name, subset in (("tempo", tempo), ("key", keys)):
        families = Counter(_family(i["genre"]) for i in subset)
        sources = Counter(_source_kind(i[f"{name}_source"]) for i in subset)
        lines.append(f"  {name} by genre family: " + ", ".join(f"{k} {v}" for k, v in families.most_common()))
        lines.append(f"  {name} by label source: " + ", ".join(f"{k} {v}" for k, v in sources.most_common()))
    bpm = sorted(i["tempo"] for i in tempo)
    if bpm:
        lines.append(
            f"  tempo range {bpm[0]:.0f}-{bpm[-1]:.0f} BPM, median {statistics.median(bpm):.0f}; "
            f"{sum(b >= 140 for b in bpm)} at 140 BPM or more; "
            f"modes: {sum(i['key'].endswith('minor') for i in keys)} minor / "
            f"{sum(i['key'].endswith('major') for i in keys)} major"
        )
    repos = Counter(i["repo"] for i in items)
    lines.append("  by repository: " + ", ".join(f"{k} {v}" for k, v in repos.most_common()))
    return "\n".join(lines)


def main() -> int:
    raw = {name: _load(name) for name in ("librosa", "essentia", "madmom")}
    items, dropped = [], []
    for item in resolved_candidates(MIRRORS):
        estimates = {name: results[item["id"]] for name, results in raw.items() if item["id"] in results}
        entry = label(item, estimates)
        (items if entry["tempo"] is not None or entry["key"] is not None else dropped).append(entry)
    manifest = {
        "description": (
            "Real development set for issue 18: recordings by people, labels with their sources. "
            "Audio is not in the repository: bench/real_set/materialise.py brings it from fetched mirrors."
        ),
        "tolerance": TOLERANCE,
        "items": items,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(summary(items))
    tempo = [i for i in items if i["tempo"] is not None]
    print(
        f"{len(items)} items ({len(tempo)} tempo, {sum(i['key'] is not None for i in items)} key, "
        f"{sum(not i['has_drums'] for i in tempo)} drumless tempo); dropped {len(dropped)}: "
        + ", ".join(d["id"] for d in dropped)
    )
    for entry in items:
        if entry["tempo_plausible"] is False:
            print(f"  implausible stated tempo: {entry['id']} {entry['tempo']} {entry['estimates']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
