// One stem's segments while its job runs: `GET /api/v1/jobs/{id}/stems/{stem}/live/{index}?wait=10`
// answers a float32 WAV of frames [index·segment_frames, (index+1)·segment_frames) once they are
// final, waiting on the server up to 10 s first (425 `not_ready` after that: asked again at once,
// so each waiting request is one long poll, not a polling loop). 410 means the segment will never
// come (the job was cancelled or failed), 416 that the index is past the end of the track.
//
// Every segment is fetched in order as soon as it is ready, decoded on the player's AudioContext
// (at the stems' own rate, so nothing is resampled) and its peaks are kept for the waveform. The
// decoded buffers are kept only near the playhead (a 3-minute song's four stems would be 250 MB of
// floats); one that was let go is fetched again when playback or a seek needs it.

import { request, tokenQuery } from "./api.js";

const WAIT_S = 10;
const PEAKS_RATE = 50; // the same picture as the server's peaks: the loudest sample of each 1/50 s
const KEEP_BEHIND = 8; // decoded segments kept behind the playhead's segment
const KEEP_AHEAD = 32; // and ahead of it (about 48 s at 44.1 kHz)
const PREFETCH = 4; // segments from the playhead's on that are fetched again if they were let go
const RETRY_MS = [500, 1000, 2000, 4000, 8000]; // after a lost connection or a 5xx, not after a 4xx

/** Why a stem's segments stopped coming, in the server's words (`code`) and the page's (`message`). */
export class SegmentsEnded extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class StemSegments {
  /**
   * `info` is the job's `/live` answer; `onSegment(index, buffer)` is called once per segment in
   * order, `onEnd(totalFrames)` when the track's last segment is in, `onStop(error)` when the job
   * will not give more (cancelled, failed, gone); `token` is the job's stream token, if any.
   */
  constructor(jobId, stem, info, context, { onSegment, onEnd, onStop, token = null }) {
    this.path = `/api/v1/jobs/${encodeURIComponent(jobId)}/stems/${encodeURIComponent(stem)}/live`;
    this.query = token ? `&${tokenQuery(token)}` : "";
    this.stem = stem;
    this.context = context;
    this.segmentFrames = info.segment_frames;
    this.received = 0; // segments 0 .. received-1 have arrived (in order)
    this.totalFrames = null; // known once the last segment is in
    this.buffers = new Map(); // index -> AudioBuffer, near the playhead only
    this.step = Math.max(1, Math.round(info.samplerate / PEAKS_RATE));
    this.peaks = new Float32Array(0);
    this.playing = 0; // the segment the playhead is in (what the cache keeps near)
    this._pending = new Map(); // index -> Promise<AudioBuffer> of a fetch under way
    this._callbacks = { onSegment, onEnd, onStop };
    this._stopped = false;
    this._aborter = new AbortController();
  }

  /** Frames received in order from the start (final for this stem). */
  get receivedFrames() {
    if (this.totalFrames !== null) return this.totalFrames;
    return this.received * this.segmentFrames;
  }

  /** The decoded segment `index` if it is kept; else null (and a fetch is started when it has arrived). */
  buffer(index) {
    const kept = this.buffers.get(index);
    if (kept) return kept;
    if (index < this.received && !this._pending.has(index)) this._fetch(index).catch(() => {});
    return null;
  }

  /** Fetch every segment in order until the last one, or until the job stops or `stop()`. */
  async follow() {
    let failures = 0;
    while (!this._stopped && this.totalFrames === null) {
      try {
        const buffer = await this._fetch(this.received);
        failures = 0;
        if (buffer === null) continue; // not ready within the server's wait: ask again
        this._arrived(buffer);
      } catch (problem) {
        if (this._stopped) return;
        if (problem instanceof SegmentsEnded) {
          if (problem.code === "past_end") this._end(this.received * this.segmentFrames);
          else this._stop(problem);
          return;
        }
        if ((problem.status && problem.status < 500) || failures >= RETRY_MS.length) {
          this._stop(new SegmentsEnded(problem.code || "unavailable", problem.message));
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS[failures]));
        failures += 1;
      }
    }
  }

  /** Keep the decoded segments near `index` (the playhead's), let the others go, and fetch again
   * the next few that were let go, before playback reaches them. */
  near(index) {
    this.playing = index;
    for (const kept of this.buffers.keys()) if (!this._wanted(kept)) this.buffers.delete(kept);
    for (let next = index; next < Math.min(this.received, index + PREFETCH); next += 1) this.buffer(next);
  }

  stop() {
    this._stopped = true;
    this._aborter.abort();
  }

  _wanted(index) {
    return index >= this.playing - KEEP_BEHIND && index <= this.playing + KEEP_AHEAD;
  }

  _arrived(buffer) {
    const index = this.received;
    this.received += 1;
    this._addPeaks(index, buffer);
    if (this._wanted(index)) this.buffers.set(index, buffer);
    this._callbacks.onSegment(index, buffer);
    // A short segment is the last one; a full one may be too, which the next index's 416 says.
    if (buffer.length < this.segmentFrames) this._end(index * this.segmentFrames + buffer.length);
  }

  _end(totalFrames) {
    this.totalFrames = totalFrames;
    this._callbacks.onEnd(totalFrames);
  }

  _stop(problem) {
    this._stopped = true;
    this._callbacks.onStop(problem);
  }

  /** The decoded segment, or null when it was not ready within the server's wait. */
  _fetch(index) {
    if (this._pending.has(index)) return this._pending.get(index);
    const fetched = this._download(index).finally(() => this._pending.delete(index));
    this._pending.set(index, fetched);
    return fetched;
  }

  async _download(index) {
    let response;
    try {
      response = await request(`${this.path}/${index}?wait=${WAIT_S}${this.query}`, { signal: this._aborter.signal });
    } catch (problem) {
      if (problem.status === 425) return null;
      if (problem.status === 416) throw new SegmentsEnded("past_end", problem.message);
      if (problem.status === 410) throw new SegmentsEnded(problem.code || "gone", problem.message);
      throw problem;
    }
    const buffer = await this.context.decodeAudioData(await response.arrayBuffer());
    if (index < this.received && this._wanted(index)) this.buffers.set(index, buffer);
    return buffer;
  }

  _addPeaks(index, buffer) {
    const start = index * this.segmentFrames;
    const needed = Math.ceil((start + buffer.length) / this.step);
    if (needed > this.peaks.length) {
      const grown = new Float32Array(Math.max(needed, 2 * this.peaks.length));
      grown.set(this.peaks);
      this.peaks = grown;
    }
    for (let c = 0; c < buffer.numberOfChannels; c += 1) {
      const data = buffer.getChannelData(c);
      for (let i = 0; i < data.length; i += 1) {
        const slot = Math.floor((start + i) / this.step);
        const value = Math.abs(data[i]);
        if (value > this.peaks[slot]) this.peaks[slot] = value;
      }
    }
  }

  /** The peaks received so far, as waveform.js draws them. */
  peakList() {
    const slots = Math.ceil(this.receivedFrames / this.step);
    return { rate: this.context.sampleRate / this.step, peaks: this.peaks.subarray(0, slots) };
  }
}
