// Stem waveforms: peaks (the loudest sample of each 1/50 s), drawn on one scale for every stem so
// a quiet stem looks quiet, with one playhead and the A-B loop drawn over all of them.

import { request } from "./api.js";

const PEAKS_RATE = 50;
// Decoding for a picture needs no fidelity: at 8 kHz a 5-minute stem is 9 MB of floats, not 115.
const DECODE_RATE = 8000;

function peaksFromBody(body) {
  const rows = body.peaks || [];
  // One list, or one list per channel: the picture takes the louder channel.
  const peaks = Array.isArray(rows[0])
    ? rows[0].map((_, i) => Math.max(...rows.map((row) => Math.abs(row[i] || 0))))
    : rows.map((value) => Math.abs(value));
  return { rate: body.rate || PEAKS_RATE, peaks };
}

function peaksFromBuffer(buffer) {
  const step = Math.max(1, Math.round(buffer.sampleRate / PEAKS_RATE));
  const channels = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
  const peaks = new Float32Array(Math.ceil(buffer.length / step));
  for (const data of channels) {
    for (let i = 0; i < data.length; i += 1) {
      const value = Math.abs(data[i]);
      const slot = Math.floor(i / step);
      if (value > peaks[slot]) peaks[slot] = value;
    }
  }
  return { rate: buffer.sampleRate / step, peaks: Array.from(peaks) };
}

/** A stem's peaks: the server's `peaks_url` when it has one, else decoded from the smallest file
 * there is (the compressed preview, or the stem itself, decoded at a low rate). */
export async function loadPeaks(link) {
  if (link.peaks_url) return peaksFromBody(await (await request(link.peaks_url)).json());
  const bytes = await (await request(link.preview_url || link.url)).arrayBuffer();
  const context = new OfflineAudioContext(1, 1, DECODE_RATE);
  return peaksFromBuffer(await context.decodeAudioData(bytes));
}

/** The loudest peak of all stems: the one scale every waveform is drawn to. */
export function sharedScale(allPeaks) {
  let loudest = 0;
  for (const { peaks } of allPeaks) for (const value of peaks) if (value > loudest) loudest = value;
  return loudest;
}

/** Draw `peaks` into `canvas` (sized to its CSS box), `duration` seconds wide, `scale` = full height. */
export function drawPeaks(canvas, { rate, peaks }, duration, scale, color) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, width, height);
  context.fillStyle = color;
  const perColumn = (duration * rate) / width;
  const middle = height / 2;
  for (let x = 0; x < width; x += 1) {
    const start = Math.floor(x * perColumn);
    const end = Math.max(start + 1, Math.floor((x + 1) * perColumn));
    let value = 0;
    for (let i = start; i < end && i < peaks.length; i += 1) if (peaks[i] > value) value = peaks[i];
    const half = scale > 0 ? (value / scale) * middle : 0;
    // At least one pixel high, so silence reads as a line.
    context.fillRect(x, middle - half, 1, Math.max(1, 2 * half));
  }
  canvas.dataset.drawn = "true";
  canvas.dataset.scale = String(scale);
}

/** Move every lane's playhead to `position` and draw the loop region, if any; `ready` (seconds,
 * while the job runs) shades the part that is not separated yet, its left edge the ready marker. */
export function paintPosition(lanes, position, duration, loop, ready = null) {
  const share = (seconds) => `${duration > 0 ? (100 * Math.min(seconds, duration)) / duration : 0}%`;
  for (const lane of lanes) {
    lane.querySelector(".playhead").style.left = share(position);
    const pending = lane.querySelector(".pending");
    pending.hidden = ready === null || ready >= duration;
    if (!pending.hidden) pending.style.left = share(ready);
    pending.dataset.readyS = ready === null ? "" : ready.toFixed(3);
    const region = lane.querySelector(".loop-region");
    region.hidden = !loop.on;
    if (loop.on) {
      region.style.left = share(loop.a);
      region.style.width = `${duration > 0 ? (100 * (loop.b - loop.a)) / duration : 0}%`;
    }
  }
}

/** A lane: the canvas with its playhead and loop region on top. */
export function makeLane(name) {
  const lane = document.createElement("div");
  lane.className = "lane";
  const canvas = document.createElement("canvas");
  canvas.className = "waveform";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `Waveform of ${name}`);
  const region = document.createElement("div");
  region.className = "loop-region";
  region.hidden = true;
  const pending = document.createElement("div");
  pending.className = "pending";
  pending.hidden = true;
  const playhead = document.createElement("div");
  playhead.className = "playhead";
  lane.append(canvas, pending, region, playhead);
  return { lane, canvas };
}
