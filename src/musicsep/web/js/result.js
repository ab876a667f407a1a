// The done state: the analysis card, one row per stem (waveform, volume, mute, solo, download),
// the shared transport and "download all".

import { request } from "./api.js";
import { Mixer } from "./mixer.js";
import { drawWaveform } from "./waveform.js";

const COLORS = { vocals: "#d9480f", drums: "#1971c2", bass: "#2f9e44", other: "#7048e8",
  no_vocals: "#5c7cfa", guitar: "#e67700", piano: "#0c8599" };

const $ = (id) => document.getElementById(id);

export function formatTime(seconds) {
  const whole = Math.max(0, Math.floor(seconds || 0));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function analysisRows(analysis) {
  const { tempo = {}, key = {}, loudness = {} } = analysis;
  const loud = loudness.lufs === null || loudness.lufs === undefined
    ? (loudness.reason || "not measured")
    : `${loudness.lufs.toFixed(1)} LUFS (peak ${loudness.peak_dbfs?.toFixed(1)} dBFS)`;
  return [
    ["Tempo", tempo.bpm ? `${Math.round(tempo.bpm)} BPM` : (tempo.reason || "no steady beat"), "bpm"],
    ["Key", key.label || key.reason || "unclear", "key"],
    ["Duration", formatTime(analysis.duration_s), "duration"],
    ["Loudness", loud, "loudness"],
  ];
}

export function renderAnalysis(analysis) {
  const list = $("analysis");
  list.replaceChildren();
  if (!analysis) return;
  for (const [term, value, name] of analysisRows(analysis)) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dd.dataset.field = name;
    list.append(dt, dd);
  }
}

function toggle(label, stem, onChange) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.className = `toggle ${label.toLowerCase()}`;
  button.setAttribute("aria-pressed", "false");
  button.setAttribute("aria-label", `${label} ${stem}`);
  button.addEventListener("click", () => {
    const on = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(on));
    onChange(on);
  });
  return button;
}

function stemRow(name, link, mixer) {
  const row = document.createElement("li");
  row.className = "stem";
  row.dataset.stem = name;
  const title = document.createElement("span");
  title.className = "stem-name";
  title.textContent = name.replace("_", " ");
  const canvas = document.createElement("canvas");
  canvas.className = "waveform";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `Waveform of ${name}`);
  const volume = document.createElement("input");
  volume.type = "range";
  volume.min = "0";
  volume.max = "1";
  volume.step = "0.01";
  volume.value = "1";
  volume.setAttribute("aria-label", `Volume ${name}`);
  volume.addEventListener("input", () => mixer.setVolume(name, Number(volume.value)));
  const download = document.createElement("a");
  download.className = "button download";
  download.href = link.url;
  download.download = "";
  download.textContent = "Download";
  download.setAttribute("aria-label", `Download ${name}`);
  const controls = document.createElement("div");
  controls.className = "stem-controls";
  controls.append(volume, toggle("Mute", name, (on) => mixer.setMuted(name, on)),
    toggle("Solo", name, (on) => mixer.setSoloed(name, on)), download);
  row.append(title, canvas, controls);
  return { row, canvas };
}

/** Shows a completed job; returns its Mixer (window.musicsep.mixer points at it too). */
export async function renderResult(job, previous) {
  if (previous) previous.close();
  const mixer = new Mixer();
  const list = $("stems");
  list.replaceChildren();
  renderAnalysis(job.analysis);
  $("zip").href = job.zip_url || "#";
  $("result").hidden = false;
  const rows = Object.entries(job.stems || {}).map(([name, link]) => [name, stemRow(name, link, mixer)]);
  for (const [, { row }] of rows) list.append(row);
  await Promise.all(rows.map(async ([name, { canvas }]) => {
    const bytes = await (await request(job.stems[name].url)).arrayBuffer();
    const buffer = await mixer.add(name, bytes);
    drawWaveform(canvas, buffer, COLORS[name] || "#495057");
  }));
  bindTransport(mixer);
  list.dataset.ready = "true";
  return mixer;
}

function bindTransport(mixer) {
  const play = $("play");
  const seek = $("seek");
  const clock = $("clock");
  seek.max = String(mixer.duration);
  seek.value = "0";
  let dragging = false; // while the thumb is held, the clock must not pull it back
  seek.onpointerdown = () => { dragging = true; };
  seek.onpointerup = () => { dragging = false; };
  const show = () => {
    const position = mixer.position();
    if (mixer.playing && position >= mixer.duration) {
      mixer.pause();
      mixer.offset = 0;
    }
    play.textContent = mixer.playing ? "Pause" : "Play";
    play.setAttribute("aria-label", mixer.playing ? "Pause" : "Play");
    if (!dragging) seek.value = String(position);
    clock.textContent = `${formatTime(position)} / ${formatTime(mixer.duration)}`;
    clock.dataset.seconds = position.toFixed(3);
    if (mixer.playing) requestAnimationFrame(show);
  };
  play.onclick = async () => {
    if (mixer.playing) mixer.pause();
    else await mixer.play();
    show();
  };
  seek.oninput = async () => {
    await mixer.seek(Number(seek.value));
    show();
  };
  show();
}
