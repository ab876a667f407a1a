// The job's bar: separation (the server's decode, separate and encode stages) owns 0-90 % and
// the analysis 90-100 %. The server's own percent ends at 100 when the stems are written, before
// the analysis runs; when it sends progress with an analysing stage the bar follows its fraction,
// and when it sends none the bar waits at 90 % under "Analysing" until the analysis arrives.
//
// The ETA is measured from the work done so far: the rate of progress between the first progress
// event with a finished chunk and the latest one, on the server's clock (`elapsed_s`), so a
// replayed log after a reload gives the same answer and the start-up (loading the model,
// decoding) does not count as separation time.

const SEPARATION_SHARE = 90;
const ANALYSIS_DONE = 99; // the analysis is in; `completed` brings the bar to 100

const STAGE_NAMES = { decode: "Reading the song", separate: "Separating", encode: "Writing the stems",
  analysing: "Analysing" };

function isAnalysing(stage) {
  return /^analy/.test(stage || "");
}

export class JobProgress {
  constructor() {
    this.reset();
  }

  reset() {
    this.percent = 0;
    this.stage = "";
    this.detail = "";
    this._first = null; // {elapsed, percent} at the first finished chunk
  }

  /** One `progress` event; returns the bar's percent (never smaller than before). */
  progress(data) {
    const elapsed = typeof data.elapsed_s === "number" ? data.elapsed_s : performance.now() / 1000;
    if (isAnalysing(data.stage)) {
      const fraction = typeof data.fraction === "number" ? data.fraction : (data.percent || 0) / 100;
      this._advance(SEPARATION_SHARE + (ANALYSIS_DONE - SEPARATION_SHARE) * Math.min(1, Math.max(0, fraction)));
      this.stage = "analysing";
      this.detail = `${STAGE_NAMES.analysing}…`;
      return this.percent;
    }
    const bar = (SEPARATION_SHARE * Math.min(100, data.percent)) / 100;
    this._advance(bar);
    if (data.percent >= 100) return this.analysing();
    this.stage = data.stage;
    const parts = [STAGE_NAMES[data.stage] || data.stage];
    if (data.chunks) parts.push(`chunk ${data.chunk} of ${data.chunks}`);
    if (data.chunk >= 1 && this._first === null) this._first = { elapsed, percent: bar };
    const eta = this._eta(elapsed, bar);
    if (eta !== null) parts.push(`about ${eta} s left`);
    this.detail = parts.join(" · ");
    return this.percent;
  }

  /** The stems are written: the analysis share begins (the server may say nothing during it). */
  analysing() {
    this._advance(SEPARATION_SHARE);
    this.stage = "analysing";
    this.detail = `${STAGE_NAMES.analysing}…`;
    return this.percent;
  }

  analysed() {
    this._advance(ANALYSIS_DONE);
    this.detail = "Analysed.";
    return this.percent;
  }

  completed() {
    this._advance(100);
    this.stage = "done";
    this.detail = "";
    return this.percent;
  }

  _advance(percent) {
    this.percent = Math.max(this.percent, Math.min(100, percent));
  }

  // Seconds until separation ends at the rate measured since the first chunk; null until there
  // is a second point to measure with.
  _eta(elapsed, bar) {
    if (this._first === null) return null;
    const seconds = elapsed - this._first.elapsed;
    const done = bar - this._first.percent;
    if (seconds <= 0 || done <= 0) return null;
    return Math.ceil(((SEPARATION_SHARE - bar) * seconds) / done);
  }
}
