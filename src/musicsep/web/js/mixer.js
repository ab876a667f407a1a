// The stem mixer: every stem through its own gain node, one shared clock for all of them.
//
// AudioBufferSourceNodes cannot be paused or moved, so play, pause and seek stop every source
// and start new ones at the same `when` and the same offset: the stems stay sample-aligned
// because the audio clock, not the page, schedules them.

const START_AHEAD_S = 0.05;

export class Mixer {
  constructor() {
    this.context = new AudioContext();
    this.master = this.context.createGain();
    this.master.connect(this.context.destination);
    this.stems = new Map(); // name -> {buffer, gain, source, volume, muted, soloed, startOffset}
    this.offset = 0; // seconds into the song when paused, or when the current run started
    this.startedAt = null; // context time at which the current run's offset plays; null = paused
    this.duration = 0;
  }

  /** Decode one stem's file; its gain starts at full volume. */
  async add(name, bytes) {
    const buffer = await this.context.decodeAudioData(bytes);
    const gain = this.context.createGain();
    gain.connect(this.master);
    this.stems.set(name, { buffer, gain, source: null, volume: 1, muted: false, soloed: false, startOffset: null });
    this.duration = Math.max(this.duration, buffer.duration);
    return buffer;
  }

  get playing() {
    return this.startedAt !== null;
  }

  /** Seconds into the song, from the audio clock. */
  position() {
    if (!this.playing) return this.offset;
    return Math.min(this.duration, this.offset + Math.max(0, this.context.currentTime - this.startedAt));
  }

  async play() {
    if (this.playing) return;
    await this.context.resume();
    if (this.offset >= this.duration) this.offset = 0;
    const when = this.context.currentTime + START_AHEAD_S;
    for (const stem of this.stems.values()) {
      const source = this.context.createBufferSource();
      source.buffer = stem.buffer;
      source.connect(stem.gain);
      source.start(when, this.offset);
      stem.source = source;
      stem.startOffset = this.offset;
    }
    this.startedAt = when;
  }

  pause() {
    if (!this.playing) return;
    this.offset = this.position();
    this._stopSources();
    this.startedAt = null;
  }

  /** Move every stem to `seconds`; playback goes on from there if it was playing. */
  async seek(seconds) {
    const wasPlaying = this.playing;
    this.pause();
    this.offset = Math.min(Math.max(0, seconds), this.duration);
    if (wasPlaying) await this.play();
  }

  setVolume(name, volume) {
    this.stems.get(name).volume = volume;
    this._applyGains();
  }

  setMuted(name, muted) {
    this.stems.get(name).muted = muted;
    this._applyGains();
  }

  setSoloed(name, soloed) {
    this.stems.get(name).soloed = soloed;
    this._applyGains();
  }

  /** What each gain node is set to and where each stem's source started (read by the tests too). */
  snapshot() {
    const stems = {};
    for (const [name, stem] of this.stems) {
      stems[name] = { gain: stem.gain.gain.value, startOffset: stem.startOffset, playing: stem.source !== null };
    }
    return { position: this.position(), playing: this.playing, duration: this.duration, stems };
  }

  close() {
    this._stopSources();
    this.context.close();
  }

  _applyGains() {
    const anySolo = [...this.stems.values()].some((stem) => stem.soloed);
    for (const stem of this.stems.values()) {
      const audible = !stem.muted && (!anySolo || stem.soloed);
      stem.gain.gain.value = audible ? stem.volume : 0;
    }
  }

  _stopSources() {
    for (const stem of this.stems.values()) {
      if (stem.source) {
        stem.source.stop();
        stem.source.disconnect();
        stem.source = null;
      }
    }
  }
}
