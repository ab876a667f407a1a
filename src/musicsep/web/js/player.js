// The practice player: every stem streams from its URL through an <audio> element, and each
// element feeds its own Web Audio gain (a MediaElementAudioSourceNode), so play starts after the
// first seconds arrive (Range requests) instead of after every full WAV is downloaded and decoded.
//
// Media elements keep time separately, so one of them leads: its clock is the song's position,
// and the others are pulled back to it when they drift. Tempo is each element's playbackRate with
// preservesPitch (the browser's own time-stretcher), the A-B loop and the beat click run off the
// same clock. Hand-written rather than wavesurfer.js: wavesurfer keeps one media element and one
// cursor per instance, so several stems with one playhead and one loop would mean keeping several
// players in step anyway, which is what this class does in a few lines.

import { Mixer } from "./mixer.js";

const DRIFT_S = 0.06; // a stem further than this from the leader is moved back to it
const TICK_MS = 25;
const CLICK_AHEAD_S = 0.12; // beats this close ahead are scheduled on the audio clock

function sameOriginUrl(url) {
  return new URL(url, window.location.href).origin === window.location.origin;
}

export class Player extends Mixer {
  /** `context`: the live player's AudioContext when the final files take over from it. */
  constructor(context = null) {
    super(context);
    this.live = false;
    this.canChangeRate = true;
    this.duration = 0;
    this.rate = 1;
    this._ticker = null;
    this._clicked = new Set();
  }

  /** Stream one stem from `url`; resolves once it can play, rejects if it cannot be read. */
  add(name, url) {
    const media = new Audio();
    media.preload = "metadata";
    if (!sameOriginUrl(url)) media.crossOrigin = "anonymous"; // a bucket's link: readable by Web Audio
    media.preservesPitch = true;
    const stem = this.addStem(name, { media });
    this.context.createMediaElementSource(media).connect(stem.gain);
    media.addEventListener("ended", () => this._ended());
    const ready = new Promise((resolve, reject) => {
      media.addEventListener("loadedmetadata", () => {
        if (Number.isFinite(media.duration)) this.duration = Math.max(this.duration, media.duration);
        resolve();
      }, { once: true });
      media.addEventListener("error", () => reject(new Error(`The ${name} stem could not be loaded.`)), { once: true });
    });
    media.src = url;
    return ready;
  }

  /** The element whose clock is the song's position. */
  get leader() {
    return this.stems.values().next().value?.media || null;
  }

  get playing() {
    const leader = this.leader;
    return Boolean(leader && !leader.paused);
  }

  position() {
    return this.leader ? Math.min(this.duration, this.leader.currentTime) : 0;
  }

  async play() {
    if (this.playing) return;
    await this.context.resume();
    if (this.position() >= this.duration - 0.01) this._moveAll(this.loop.on ? this.loop.a : 0);
    const start = this.position();
    for (const stem of this.stems.values()) stem.media.currentTime = start;
    await Promise.all([...this.stems.values()].map((stem) => stem.media.play()));
    this._clicked.clear();
    clearInterval(this._ticker);
    this._ticker = setInterval(() => this._tick(), TICK_MS);
    this.onChange();
  }

  pause() {
    for (const stem of this.stems.values()) stem.media.pause();
    clearInterval(this._ticker);
    this._ticker = null;
    this.onChange();
  }

  toggle() {
    return this.playing ? this.pause() : this.play();
  }

  seek(seconds) {
    this._moveAll(Math.min(Math.max(0, seconds), this.duration));
    this.onChange();
  }

  setRate(rate) {
    this.rate = rate;
    for (const stem of this.stems.values()) {
      stem.media.preservesPitch = true;
      stem.media.playbackRate = rate;
    }
    this.onChange();
  }

  /** What each stem is set to (read by the tests too). */
  snapshot() {
    const stems = {};
    for (const [name, stem] of this.stems) {
      stems[name] = { gain: stem.gain.gain.value, time: stem.media.currentTime, playing: !stem.media.paused };
    }
    return { position: this.position(), playing: this.playing, duration: this.duration, rate: this.rate,
      loop: { ...this.loop }, loops: this.loops, stems };
  }

  close() {
    clearInterval(this._ticker);
    for (const stem of this.stems.values()) {
      stem.media.pause();
      stem.media.removeAttribute("src");
      stem.media.load(); // stops any download still going
    }
    this.context.close();
  }

  _moveAll(seconds) {
    for (const stem of this.stems.values()) stem.media.currentTime = seconds;
    this._clicked.clear();
  }

  _ended() {
    if (this.loop.on) return;
    this.pause();
    this._moveAll(0);
    this.onChange();
  }

  _tick() {
    const position = this.position();
    if (this.loop.on && position >= this.loop.b) {
      this._moveAll(this.loop.a);
      this.loops += 1;
      return;
    }
    const leader = this.leader;
    for (const stem of this.stems.values()) {
      if (stem.media !== leader && !stem.media.seeking && Math.abs(stem.media.currentTime - position) > DRIFT_S) {
        stem.media.currentTime = position;
      }
    }
    if (this.clickOn) this._scheduleClicks(position);
  }

  _scheduleClicks(position) {
    const horizon = position + CLICK_AHEAD_S * this.rate;
    for (const beat of this.beats) {
      if (beat < position || beat > horizon || this._clicked.has(beat)) continue;
      this._clicked.add(beat);
      this._click(this.context.currentTime + (beat - position) / this.rate);
    }
  }

  _click(when) {
    this.clicks += 1;
    const tone = this.context.createOscillator();
    const envelope = this.context.createGain();
    tone.frequency.value = 1500;
    envelope.gain.setValueAtTime(0.3, when);
    envelope.gain.exponentialRampToValueAtTime(0.001, when + 0.04);
    tone.connect(envelope).connect(this.context.destination);
    tone.start(when);
    tone.stop(when + 0.05);
  }
}
