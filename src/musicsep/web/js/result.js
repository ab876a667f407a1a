// The done state: what ran, the analysis, one row per stem (waveform lane, volume, mute, solo,
// download), the practice player's controls, "download all" and the export of the current mix;
// and before it, while the job runs, the same rows and controls around the live player (live.js),
// whose waveforms grow as the segments arrive, until the final files take over.

import { exportMix } from "./api.js";
import { handOver } from "./handover.js";
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

function toggle(label, stem, pressed, onChange) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.className = `toggle ${label.toLowerCase()}`;
  button.setAttribute("aria-pressed", String(pressed));
  button.setAttribute("aria-label", `${label} ${stem}`);
  button.addEventListener("click", () => {
    const on = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(on));
    onChange(on);
  });
  return button;
}

/** A stem's row; `link` is null while the job runs (no download yet). The controls start as the
 * player's mix is, so a hand-over from the live player keeps what the user set. */
function stemRow(name, link, player) {
  const mix = player.stems.get(name);
  const row = document.createElement("li");
  row.className = "stem";
  row.dataset.stem = name;
  const title = document.createElement("span");
  title.className = "stem-name";
  title.textContent = name.replace("_", " ");
  const { lane, canvas } = makeLane(name);
  const volume = document.createElement("input");
  Object.assign(volume, { type: "range", min: "0", max: "1", step: "0.01", value: String(mix.volume) });
  volume.setAttribute("aria-label", `Volume ${name}`);
  volume.addEventListener("input", () => player.setVolume(name, Number(volume.value)));
  const controls = document.createElement("div");
  controls.className = "stem-controls";
  controls.append(volume, toggle("Mute", name, mix.muted, (on) => player.setMuted(name, on)),
    toggle("Solo", name, mix.soloed, (on) => player.setSoloed(name, on)));
  if (link) {
    const download = document.createElement("a");
    download.className = "button download";
    download.href = link.url;
    download.download = "";
    download.textContent = "Download";
    download.setAttribute("aria-label", `Download ${name}`);
    controls.append(download);
  }
  row.append(title, controls, lane);
  return { row, lane, canvas };
}

function showRows(rows) {
  const list = $("stems");
  for (const flag of ["drawn", "playable", "ready", "live"]) delete list.dataset[flag];
  resized?.disconnect();
  list.replaceChildren(...rows.map(({ row }) => row));
}

// Why the level moves at the hand-over, when it does: only clip mode `rescale` makes the final
// file differ from the live samples (it divides the whole stem by its peak, known at the end).
const UNSCALED_NOTE = "While it separates you hear each stem as the model made it. The finished files are " +
  "scaled down a little so that no sample clips (clip mode “rescale” needs the whole stem's peak), so the " +
  "sound gets slightly quieter when the player switches to them at the end.";
const SWITCHED_NOTE = "The player switched to the finished files, which are scaled down a little against what " +
  "played while it separated (clip mode “rescale”), so no sample clips.";

/** While the job runs: the stems' rows around `live`, waveforms drawn from the received segments. */
export function renderLive(live) {
  $("result-title").textContent = "Listen while it separates";
  $("result-model").textContent = "";
  renderAnalysis(null);
  $("result-actions").hidden = true;
  $("live-note").textContent = live.level === "unscaled" ? UNSCALED_NOTE : "";
  $("live-note").hidden = live.level !== "unscaled";
  const names = [...live.stems.keys()];
  const rows = names.map((name) => stemRow(name, null, live));
  showRows(rows);
  $("stems").dataset.live = "true";
  $("result").hidden = false;
  bindTransport(live, rows.map(({ lane }) => lane), rows.map(({ row }) => row));
  $("play").disabled = false;
  let queued = false;
  const draw = () => {
    queued = false;
    const allPeaks = names.map((name) => live.stems.get(name).segments.peakList());
    const scale = sharedScale(allPeaks);
    rows.forEach(({ canvas }, i) => drawPeaks(canvas, allPeaks[i], live.duration, scale, COLORS[names[i]] || "#495057"));
  };
  live.onSegments = () => {
    if (!queued) requestAnimationFrame(draw);
    queued = true;
  };
  resized?.disconnect();
  resized = new ResizeObserver(draw);
  resized.observe($("stems"));
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
 * `isCurrent()` says whether the job is still the one on screen once the stems can play. A live
 * player (`previous.live`) keeps playing until the final files are loaded, then hands over. */
export async function renderResult(job, previous, isCurrent) {
  const live = previous?.live ? previous : null;
  if (previous && !live) previous.close();
  const player = new Player(live ? live.context : null);
  player.beats = job.analysis?.tempo?.beats || [];
  // The compressed preview when the server made one: the full stem stays the download.
  const loading = Promise.all(Object.entries(job.stems || {}).map(([name, link]) => player.add(name, link.preview_url || link.url)));
  const show = () => {
    $("result-title").textContent = job.title || "Stems";
    $("result-model").textContent = modelLine(job);
    renderAnalysis(job.analysis);
    $("zip").href = job.zip_url || "#";
    $("result-actions").hidden = false;
    $("live-note").textContent = SWITCHED_NOTE;
    $("live-note").hidden = live?.level !== "unscaled";
    const rows = Object.entries(job.stems || {}).map(([name, link]) => stemRow(name, link, player));
    showRows(rows);
    $("result").hidden = false;
    return rows;
  };
  let rows = null;
  if (!live) {
    $("play").disabled = true;
    $("player-status").textContent = "Loading the stems…";
    rows = show();
    $("result").scrollIntoView({ block: "start" });
  }
  await loading;
  if (!isCurrent()) {
    live?.close({ keepContext: true }); // the caller closes `player`, and the context with it
    return player;
  }
  if (!player.duration && job.analysis) player.duration = job.analysis.duration_s;
  player.handover = live ? await handOver(live, player) : null;
  if (live) rows = show(); // the live rows stay until the final files play: the mix carries over
  bindTransport(player, rows.map(({ lane }) => lane), rows.map(({ row }) => row));
  bindExport(job, player);
  $("play").disabled = false;
  $("player-status").textContent = "Ready: Space plays or pauses, the arrow keys move.";
  delete $("player-status").dataset.state;
  const list = $("stems");
  list.dataset.playable = "true";
  list.dataset.ready = "true";
  drawWaveforms(job, rows, player).catch(() => {
    $("player-status").textContent = "Ready (the waveforms could not be drawn).";
  });
  return player;
}
