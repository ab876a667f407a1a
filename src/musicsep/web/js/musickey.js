// Key and tempo as musicians read them. The analysis names tonics with sharps only (A#, D#);
// a chart says Bb major, Eb major. When the server spells the key itself (`key.name`), or gives
// the tempo's `alternatives`, the page shows those instead.

// The conventional spelling of each key: the one with fewer accidentals (F# major and its
// relative D# minor are the six-accidental ties; F# major and Eb minor are what charts use).
const MAJOR = { C: "C", "C#": "Db", D: "D", "D#": "Eb", E: "E", F: "F", "F#": "F#", G: "G", "G#": "Ab", A: "A",
  "A#": "Bb", B: "B" };
const MINOR = { C: "C", "C#": "C#", D: "D", "D#": "Eb", E: "E", F: "F", "F#": "F#", G: "G", "G#": "G#", A: "A",
  "A#": "Bb", B: "B" };

// Below this the beat tracker may have locked onto half or double the felt tempo.
const LOW_TEMPO_CONFIDENCE = 0.5;

/** "A# major" -> "Bb major"; a label it does not know is given back as it came. */
export function spellKey(label) {
  const match = /^([A-G][#b]?)\s+(major|minor)$/.exec(label || "");
  if (!match) return label;
  const table = match[2] === "major" ? MAJOR : MINOR;
  return `${table[match[1]] || match[1]} ${match[2]}`;
}

function percent(confidence) {
  return typeof confidence === "number" ? ` (confidence ${Math.round(confidence * 100)}%)` : "";
}

/** The key line: spelled, with its confidence. */
export function keyText(key = {}) {
  const label = key.name || spellKey(key.label);
  return label ? `${label}${percent(key.confidence)}` : key.reason || "unclear";
}

function alternativeTempi(tempo) {
  if (Array.isArray(tempo.alternatives) && tempo.alternatives.length) {
    // The server offers up to four readings with scores; two are what a person tries by ear.
    const scored = tempo.alternatives
      .map((entry) => (typeof entry === "number" ? { bpm: entry } : entry))
      .filter((entry) => entry.bpm);
    scored.sort((a, b) => (b.score ?? 0) - (a.score ?? 0));
    return scored.slice(0, 2).map((entry) => entry.bpm);
  }
  const unsure = typeof tempo.confidence === "number" && tempo.confidence < LOW_TEMPO_CONFIDENCE;
  return unsure ? [tempo.bpm / 2, tempo.bpm * 2] : [];
}

/** The tempo line: BPM, and half/double when the tracker is unsure. */
export function tempoText(tempo = {}) {
  if (!tempo.bpm) return tempo.reason || "no steady beat";
  const others = alternativeTempi(tempo).map((bpm) => Math.round(bpm));
  const unsure = others.length ? ` (or ${others.join(" / ")}: low confidence)` : "";
  return `${Math.round(tempo.bpm)} BPM${unsure}`;
}
