// What both players share: one AudioContext, a master gain, one gain per stem (its volume, or 0
// when it is muted or another stem is soloed), and the A-B loop's bounds. The final files'
// player (player.js) and the live one (live.js) differ only in where the samples come from.

export class Mixer {
  /** `context`: an AudioContext to play on (the live player's, at a hand-over); a new one if absent. */
  constructor(context = null) {
    this.context = context || new AudioContext();
    this.master = this.context.createGain();
    this.master.connect(this.context.destination);
    this.stems = new Map(); // name -> {gain, volume, muted, soloed, ...what the player adds}
    this.loop = { a: null, b: null, on: false };
    this.beats = [];
    this.clickOn = false;
    this.loops = 0; // how many times the loop went back to A (read by the page's tests)
    this.clicks = 0; // beat clicks scheduled so far (likewise)
    this.onChange = () => {};
  }

  /** A stem's gain into the master, with its mix settings. */
  addStem(name, extra = {}) {
    const gain = this.context.createGain();
    gain.connect(this.master);
    const stem = { gain, volume: 1, muted: false, soloed: false, ...extra };
    this.stems.set(name, stem);
    this._applyGains();
    return stem;
  }

  setLoop(a, b) {
    const low = Math.min(a, b);
    const high = Math.max(a, b);
    this.loop = high - low >= 0.05 ? { a: low, b: high, on: true } : { a: null, b: null, on: false };
    this.onChange();
  }

  clearLoop() {
    this.setLoop(0, 0);
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

  /** Take over another player's volumes, mutes, solos and loop (at the live → final hand-over). */
  copyMix(other) {
    for (const [name, stem] of this.stems) {
      const theirs = other.stems.get(name);
      if (theirs) Object.assign(stem, { volume: theirs.volume, muted: theirs.muted, soloed: theirs.soloed });
    }
    this.loop = { ...other.loop };
    this._applyGains();
  }

  /** The gain each stem plays at now: 0 when muted or when another stem is soloed. */
  gains() {
    const anySolo = [...this.stems.values()].some((stem) => stem.soloed);
    const gains = {};
    for (const [name, stem] of this.stems) gains[name] = !stem.muted && (!anySolo || stem.soloed) ? stem.volume : 0;
    return gains;
  }

  _applyGains() {
    const gains = this.gains();
    for (const [name, stem] of this.stems) stem.gain.gain.value = gains[name];
    this.onChange();
  }
}
