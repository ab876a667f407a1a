// The live player: the stems play while the job is still separating them. Each stem's segments
// (livesegments.js) are decoded into AudioBuffers and played by AudioBufferSourceNodes scheduled
// back to back on the one AudioContext clock, into the same per-stem gains as the final player
// (mixer.js), so volume, mute and solo work alike. Scheduling on the audio clock, a second or so
// ahead, is what makes segment boundaries seamless: each buffer starts on the exact sample frame
// where the previous one ends, which timers or media elements cannot promise.
//
// The playhead cannot pass the frontier (the frames every stem has received): when the scheduled
// audio runs out there, the player waits — `waiting`, shown on the page — and starts again by
// itself, a few tens of milliseconds after the next segment of every stem is in. When the job is
// done, `handOver` (handover.js) passes the position and the mix to the final files' player on the same context
// and crossfades to it. Tempo stays at 100 % here: an AudioBufferSourceNode's playbackRate would
// change the pitch, which the final player's media elements keep.

import { StemSegments } from "./livesegments.js";
import { Mixer } from "./mixer.js";
import { formatTime } from "./transport.js";

const LOOKAHEAD_S = 1.0; // audio is scheduled this far ahead of the clock
const START_S = 0.06; // a start or a restart is scheduled this far ahead, so its first frame is on time
const MAX_START_S = 0.5; // how far that margin grows on a machine too busy to keep it
const LATE_FRAMES = 256; // a source is started only while its frame is at least two render quanta away
const SAFETY_S = 0.03; // audio that ends sooner than this cannot be continued without a gap
const TICK_MS = 25;

export class LivePlayer extends Mixer {
  /** `info`: the job's `GET /live` answer; `durationS`: the `started` event's duration claim, for
   * drawing until the track's length is known; `token`: the job's stream token, if any. */
  constructor(jobId, info, { durationS = null, token = null } = {}) {
    super(new AudioContext({ sampleRate: info.samplerate }));
    this.live = true;
    this.canChangeRate = false;
    this.rate = 1;
    this.level = info.level;
    this.sampleRate = info.samplerate;
    this.segmentFrames = info.segment_frames;
    this.totalFrames = info.done && Number.isInteger(info.total_frames) ? info.total_frames : null;
    this.expectedFrames = Number.isInteger(info.total_frames) ? info.total_frames : Math.round((durationS || 0) * info.samplerate);
    this.serverFrames = info.ready_frames || 0; // final on the server (from /live and progress events)
    this.waiting = false;
    this.waits = 0; // how often playback ran into the frontier (read by the tests)
    this.lateStarts = 0; // starts taken back because the page was too slow to set them (likewise)
    this._startS = START_S; // how far ahead a start is scheduled (grows after a late one)
    this._late = false; // a piece could not be started before its frame
    this.stopped = null; // why no more segments will come, when that happened
    this.timeline = { created: performance.now(), firstSegment: {}, playable: null, firstSound: null };
    this.onSegments = () => {};
    this._wanted = false; // Play was pressed (the player may still be waiting)
    this._cursor = 0; // the song frame scheduling continues from
    this._endClock = 0; // the context frame where the scheduled audio ends
    this._anchors = []; // {clock, frame, end}: the song frame each context frame span starts at
    this._sources = new Set();
    this._ticker = null;
    const callbacks = (name) => ({
      onSegment: (index) => this._arrived(name, index),
      onEnd: (frames) => this._ended(frames),
      onStop: (problem) => this._stopped(problem),
      token,
    });
    for (const name of info.stems) {
      this.addStem(name, { segments: new StemSegments(jobId, name, info, this.context, callbacks(name)) });
    }
  }

  /** Start fetching; with `autoplay`, play as soon as every stem's first segment is in. */
  start({ autoplay = false } = {}) {
    for (const stem of this.stems.values()) stem.segments.follow();
    if (autoplay) this.play();
  }

  get duration() {
    return (this.totalFrames ?? Math.max(this.expectedFrames, this.readyFrames())) / this.sampleRate;
  }

  /** Frames every stem has received: how far the playhead may go. */
  readyFrames() {
    let ready = Infinity;
    for (const stem of this.stems.values()) ready = Math.min(ready, stem.segments.receivedFrames);
    return Number.isFinite(ready) ? ready : 0;
  }

  readyS() {
    return this.readyFrames() / this.sampleRate;
  }

  get playing() {
    return this._wanted;
  }

  position() {
    return this._positionFrames() / this.sampleRate;
  }

  /** A `progress` event: how far the server is (the segments say what has arrived here). */
  serverProgress(data) {
    if (Number.isInteger(data.ready_frames)) this.serverFrames = Math.max(this.serverFrames, data.ready_frames);
    this.onChange();
  }

  play() {
    if (this._wanted) return;
    this.context.resume();
    if (this.totalFrames !== null && this._cursor >= this.totalFrames) this._cursor = this._loopFrames()?.a ?? 0;
    this._wanted = true;
    clearInterval(this._ticker);
    this._ticker = setInterval(() => this._tick(), TICK_MS);
    this._tick();
    this.onChange();
  }

  pause() {
    this._cursor = this._positionFrames();
    this._silence();
    this._wanted = false;
    clearInterval(this._ticker);
    this._ticker = null;
    this.waiting = false;
    this.onChange();
  }

  toggle() {
    return this._wanted ? this.pause() : this.play();
  }

  /** Move within the part that has arrived; a later position stops at the frontier. */
  seek(seconds) {
    const frame = Math.min(Math.max(0, Math.round(seconds * this.sampleRate)), this.readyFrames());
    this._silence();
    this._cursor = frame;
    this._tick();
    this.onChange();
  }

  setRate() {
    // Not while separating: see the note at the top. The page disables the control and says why.
  }

  setLoop(a, b) {
    super.setLoop(a, b);
    const loop = this._loopFrames();
    // Audio already scheduled past the new B must not play: start again from where the playhead is.
    if (this._wanted && loop && this._cursor > loop.b && this._positionFrames() <= loop.b) this.seek(this.position());
  }

  snapshot() {
    const stems = {};
    for (const [name, stem] of this.stems) stems[name] = { gain: stem.gain.gain.value, received: stem.segments.received };
    return { live: true, position: this.position(), playing: this.playing, waiting: this.waiting, waits: this.waits,
      late_starts: this.lateStarts,
      ready_s: this.readyS(), duration: this.duration, rate: 1, loop: { ...this.loop }, loops: this.loops, stems };
  }

  /** The status line: what the player is doing, in words, and a state the page styles. */
  status() {
    const ready = formatTime(this.readyS());
    if (this.stopped) return { state: "stopped", text: `No more audio will come: ${this.stopped.message}` };
    if (this.waiting) {
      return this.readyFrames() > this._cursor
        ? { state: "loading", text: "Loading…" }
        : { state: "waiting", text: `Waiting for the separation… (ready up to ${ready})` };
    }
    const whole = this.totalFrames !== null ? "the whole song is ready" : `ready up to ${ready}`;
    return this._wanted ? { state: "playing", text: `Listening while it separates: ${whole}.` }
      : { state: "paused", text: `Listen while it separates: ${whole}. Space plays or pauses.` };
  }

  close({ keepContext = false } = {}) {
    clearInterval(this._ticker);
    this._wanted = false;
    for (const stem of this.stems.values()) stem.segments.stop();
    this._silence();
    this.master.disconnect();
    if (!keepContext) this.context.close();
  }

  // --- scheduling ----------------------------------------------------------------------------

  _tick() {
    if (!this._wanted || this.context.state !== "running") return;
    const now = this.context.currentTime * this.sampleRate;
    this._noteFirstSound();
    while (this._anchors.length > 1 && this._anchors[1].clock <= now) this._anchors.shift();
    const segment = Math.floor(this._positionFrames() / this.segmentFrames);
    for (const stem of this.stems.values()) stem.segments.near(segment);
    if (this._anchors.length && this._endClock < now + SAFETY_S * this.sampleRate) {
      if (this._atEnd()) {
        if (now >= this._endClock) this._finished();
        return;
      }
      if (!this._available(this._cursor)) {
        // Still playing its last frames, or ran into the frontier: then it waits.
        if (now >= this._endClock) this._ranOut();
        return;
      }
      this._ranOut(); // it came, but too late to join on: a restart, after a short gap
    }
    let started = null;
    if (!this._anchors.length) {
      if (!this._available(this._cursor)) {
        this._setWaiting(true);
        return;
      }
      const clock = Math.ceil(now + this._startS * this.sampleRate);
      started = { clock, frame: this._cursor, loops: this.loops, firstSound: this.timeline.firstSound };
      this._anchors = [{ clock, frame: this._cursor, end: null }];
      this._endClock = clock;
      this._setWaiting(false);
    }
    while (this._endClock < now + LOOKAHEAD_S * this.sampleRate && this._scheduleNext()) {
      // one piece (the rest of a segment, or up to the loop's end) per turn
    }
    // A piece that could not be started on time: at a start, nothing sounded, so try again now
    // with a wider margin; later on, what was scheduled plays to its end and the player restarts
    // from the piece after a short gap (the branch above), as it does when a segment comes late.
    if (this._late && started && this._endClock === started.clock) this._takeBack(started);
    this._late = false;
  }

  /**
   * A start the page's thread was too slow to set: the clock got within two render quanta of its
   * frame before every stem's first source was started. Started anyway, those sources would begin
   * late, behind the next pieces scheduled on the exact frame, and overlap them at the join; on a
   * busy machine the page's thread stalls for tens of milliseconds. So it is taken back before it
   * sounds and tried again on the next tick with twice the margin, up to MAX_START_S.
   */
  _takeBack(started) {
    this._silence();
    this._cursor = started.frame;
    this.loops = started.loops;
    this.timeline.firstSound = started.firstSound;
    this._startS = Math.min(this._startS * 2, MAX_START_S);
    this.lateStarts += 1;
  }

  /** Schedule the next piece from the cursor on every stem; false when it is not there yet. */
  _scheduleNext() {
    const loop = this._loopFrames();
    if (loop && this._cursor >= loop.b) {
      this._anchors[this._anchors.length - 1].end = this._cursor;
      this._anchors.push({ clock: this._endClock, frame: loop.a, end: null });
      this._cursor = loop.a;
      this.loops += 1;
      return true;
    }
    if (!this._available(this._cursor)) return false;
    const index = Math.floor(this._cursor / this.segmentFrames);
    const offset = this._cursor - index * this.segmentFrames;
    const buffers = [...this.stems.values()].map((stem) => stem.segments.buffer(index));
    let length = Math.min(...buffers.map((buffer) => buffer.length)) - offset;
    if (loop && this._cursor < loop.b) length = Math.min(length, loop.b - this._cursor);
    const when = exactTime(this._endClock, this.sampleRate);
    // Every stem's source is made and connected first (graph changes the audio thread may take a
    // while to pick up), then all are started, each only while its frame is still ahead of the
    // clock: the stems start on the same frame, or none of them does.
    const sources = [...this.stems.values()].map((stem, i) => {
      const source = this.context.createBufferSource();
      source.buffer = buffers[i];
      source.connect(stem.gain);
      source.onended = () => this._sources.delete(source);
      return source;
    });
    for (const [i, source] of sources.entries()) {
      if (this.context.currentTime * this.sampleRate + LATE_FRAMES > this._endClock) {
        for (const early of sources.slice(0, i)) early.stop(); // before its frame: it plays nothing
        for (const unused of sources) unused.disconnect();
        this._late = true;
        return false;
      }
      // Whole segments start without an offset and play to their end, so no frame count is ever
      // rounded; a duration is given only when a loop ends within the segment.
      if (offset + length < buffers[i].length) source.start(when, offset / this.sampleRate, length / this.sampleRate);
      else source.start(when, offset / this.sampleRate);
      this._sources.add(source);
    }
    if (!this.timeline.firstSound) this.timeline.firstSound = { contextTime: when, ms: null };
    this._cursor += length;
    this._endClock += length;
    return true;
  }

  _positionFrames() {
    if (!this._anchors.length) return this._cursor;
    const now = this.context.currentTime * this.sampleRate;
    let current = this._anchors[0];
    for (const anchor of this._anchors) if (anchor.clock <= now) current = anchor;
    if (now < current.clock) return current.frame;
    return Math.min(current.frame + Math.floor(now - current.clock), current.end ?? this._cursor);
  }

  _available(frame) {
    const index = Math.floor(frame / this.segmentFrames);
    const offset = frame - index * this.segmentFrames;
    let found = true;
    for (const stem of this.stems.values()) {
      const buffer = stem.segments.buffer(index); // starts a fetch when it was let go
      if (!buffer || offset >= buffer.length) found = false;
    }
    return found;
  }

  _atEnd() {
    return this.totalFrames !== null && this._cursor >= this.totalFrames && !this._loopFrames();
  }

  _loopFrames() {
    if (!this.loop.on) return null;
    return { a: Math.round(this.loop.a * this.sampleRate), b: Math.round(this.loop.b * this.sampleRate) };
  }

  _ranOut() {
    this._anchors = [];
    this.waits += 1;
  }

  _finished() {
    this._silence();
    this._wanted = false;
    clearInterval(this._ticker);
    this._cursor = 0;
    this.onChange();
  }

  _silence() {
    for (const source of this._sources) source.stop();
    this._sources.clear();
    this._anchors = [];
  }

  _setWaiting(waiting) {
    if (waiting === this.waiting) return;
    this.waiting = waiting;
    this.onChange();
  }

  // When the first scheduled frame is heard, on the page's clock: the output timestamp maps the
  // audio clock to performance.now(), output latency included.
  _noteFirstSound() {
    const first = this.timeline.firstSound;
    if (!first || first.ms !== null || this.context.currentTime < first.contextTime) return;
    const stamp = this.context.getOutputTimestamp();
    first.ms = stamp.performanceTime
      ? stamp.performanceTime + (first.contextTime - stamp.contextTime) * 1000
      : performance.now() - (this.context.currentTime - first.contextTime) * 1000;
    first.outputLatencyS = this.context.outputLatency || 0;
  }

  _arrived(name, index) {
    if (index === 0) this.timeline.firstSegment[name] = performance.now();
    if (this.timeline.playable === null && [...this.stems.values()].every((stem) => stem.segments.received > 0)) {
      this.timeline.playable = performance.now();
    }
    if (this._wanted) this._tick();
    this.onSegments();
    this.onChange();
  }

  _ended(frames) {
    this.totalFrames = Math.max(this.totalFrames ?? 0, frames);
    this.onChange();
  }

  _stopped(problem) {
    this.stopped = problem;
    this.onChange();
  }
}

/** The context time at which frame `frame` starts, never a rounding error before it: Chromium plays
 * a buffer whose start time falls short of a frame from between two samples (interpolated, so the
 * samples change a little), and one at or just after the frame exactly from it. frame / rate alone
 * falls short for about 2 % of frames at 44.1 kHz; one step up to the next double fixes it. */
function exactTime(frame, rate) {
  let time = frame / rate;
  for (let turns = 0; turns < 4 && time * rate < frame; turns += 1) time += Number.EPSILON * time;
  return time;
}
