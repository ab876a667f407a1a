// The done state: what ran, the analysis, one row per stem (waveform lane, volume, mute, solo,
// download), the practice player's controls, "download all" and the export of the current mix.

import { exportMix } from "./api.js";
import { keyText, tempoText } from "./musickey.js";
import { Player } from "./player.js";
import { bindTransport, formatTime } from "./transport.js";
import { drawPeaks, loadPeaks, makeLane, sharedScale } from "./waveform.js";

const COLORS = { vocals: "#d9480f", drums: "#1971c2", bass: "#2f9e44", other: "#7048e8",
  no_vocals: "#5c7cfa", guitar: "#e67700", piano: "#0c8599" };
// Without the server's peaks, a waveform needs the whole stem: it waits until playback has
// started (or this long after the player is ready) so that it does not compete with the first
// seconds of every stem for the connection.
const FULL_FILE_PEAKS_DELAY_MS = 1500;

const $ = (id) => document.getElementById(id);
let resized = null; // the ResizeObserver of the waveforms on screen

function analysisRows(analysis) {
  const { tempo = {}, key = {}, loudness = {} } = analysis;
  const loud = loudness.lufs === null || loudness.lufs === undefined
    ? (loudness.reason || "not measured")
    : `${loudness.lufs.toFixed(1)} LUFS (peak ${loudness.peak_dbfs?.toFixed(1)} dBFS)`;
  return [
    ["Tempo", tempoText(tempo), "bpm"],
    ["Key", keyText(key), "key"],
    ["Duration", formatTime(analysis.duration_s), "duration"],
    ["Loudness", loud, "loudness"],
  ];
}

function renderAnalysis(analysis) {
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

/** "Separated with X" and, after a fallback, which model was asked for and why it did not run. */
export function modelLine(job) {
  const ran = `Separated with ${job.model}.`;
  return job.fallback ? `${ran} ${job.fallback.from} was asked for: ${job.fallback.reason}` : ran;
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

function stemRow(name, link, player) {
  const row = document.createElement("li");
  row.className = "stem";
  row.dataset.stem = name;
  const title = document.createElement("span");
  title.className = "stem-name";
  title.textContent = name.replace("_", " ");
  const { lane, canvas } = makeLane(name);
  const volume = document.createElement("input");
  Object.assign(volume, { type: "range", min: "0", max: "1", step: "0.01", value: "1" });
  volume.setAttribute("aria-label", `Volume ${name}`);
  volume.addEventListener("input", () => player.setVolume(name, Number(volume.value)));
  const download = document.createElement("a");
  download.className = "button download";
  download.href = link.url;
  download.download = "";
  download.textContent = "Download";
  download.setAttribute("aria-label", `Download ${name}`);
  const controls = document.createElement("div");
  controls.className = "stem-controls";
  controls.append(volume, toggle("Mute", name, (on) => player.setMuted(name, on)),
    toggle("Solo", name, (on) => player.setSoloed(name, on)), download);
  row.append(title, controls, lane);
  return { row, lane, canvas };
}

async function drawWaveforms(job, rows, player) {
  const links = Object.values(job.stems);
  if (!links.every((link) => link.peaks_url)) {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, FULL_FILE_PEAKS_DELAY_MS);
      player.leader?.addEventListener("playing", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }
  const allPeaks = await Promise.all(links.map((link) => loadPeaks(link)));
  const scale = sharedScale(allPeaks);
  const draw = () => rows.forEach(({ row, canvas }, i) => drawPeaks(canvas, allPeaks[i], player.duration, scale,
    COLORS[row.dataset.stem] || "#495057"));
  draw();
  // Drawn again at the new width when the window is resized or a phone turns.
  resized?.disconnect();
  resized = new ResizeObserver(draw);
  resized.observe($("stems"));
  $("stems").dataset.drawn = "true";
}

function bindExport(job, player) {
  const button = $("export-mix");
  const error = $("export-error");
  error.hidden = true;
  button.onclick = async () => {
    button.disabled = true;
    error.hidden = true;
    try {
      const { blob, filename } = await exportMix(job, player.gains(), "wav16");
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = filename;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    } catch (problem) {
      error.textContent = problem.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  };
}

/** Show a completed job; returns its Player (window.musicsep.player points at it too).
 * `isCurrent()` says whether the job is still the one on screen once the stems can play. */
export async function renderResult(job, previous, isCurrent) {
  if (previous) previous.close();
  const player = new Player();
  player.beats = job.analysis?.tempo?.beats || [];
  $("result-title").textContent = job.title || "Stems";
  $("result-model").textContent = modelLine(job);
  renderAnalysis(job.analysis);
  $("zip").href = job.zip_url || "#";
  $("play").disabled = true;
  $("player-status").textContent = "Loading the stems…";
  const list = $("stems");
  delete list.dataset.drawn;
  delete list.dataset.playable;
  const rows = Object.entries(job.stems || {}).map(([name, link]) => stemRow(name, link, player));
  list.replaceChildren(...rows.map(({ row }) => row));
  $("result").hidden = false;
  $("result").scrollIntoView({ block: "start" });
  // The compressed preview when the server made one: the full stem stays the download.
  await Promise.all(Object.entries(job.stems || {}).map(([name, link]) => player.add(name, link.preview_url || link.url)));
  if (!isCurrent()) return player;
  if (!player.duration && job.analysis) player.duration = job.analysis.duration_s;
  bindTransport(player, rows.map(({ lane }) => lane), rows.map(({ row }) => row));
  bindExport(job, player);
  $("play").disabled = false;
  $("player-status").textContent = "Ready: Space plays or pauses, the arrow keys move.";
  list.dataset.playable = "true";
  list.dataset.ready = "true";
  drawWaveforms(job, rows, player).catch(() => {
    $("player-status").textContent = "Ready (the waveforms could not be drawn).";
  });
  return player;
}
