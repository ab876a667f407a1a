// The live → final hand-over: when the job is done, the finished files' player takes over from the
// live one at the same position, with the same mix, on the same AudioContext, without a gap or a
// jump the listener hears.

const CROSSFADE_S = 0.03;
const ALIGN_S = 0.02; // the final files are moved again when they are further than this from the live clock

/**
 * `final` (a Player on `live`'s context, its stems loaded) takes over at the current position
 * with `live`'s mix. Playing, it starts silent, is moved to where the live player is, and the two
 * crossfade over 30 ms; returns how far apart they were when they did.
 */
export async function handOver(live, final) {
  final.copyMix(live);
  if (!live.playing || live.waiting) {
    const wanted = live.playing;
    const position = live.position();
    live.close({ keepContext: true });
    final.seek(position);
    if (wanted) await final.play();
    return { skew_s: 0, crossfaded: false };
  }
  final.master.gain.value = 0;
  final.seek(live.position());
  await final.play();
  let skew = await settledSkew(final, live);
  // The media elements start late by their start-up time: moved ahead by it once or twice.
  for (let tries = 0; tries < 2 && Math.abs(skew) > ALIGN_S; tries += 1) {
    final.seek(live.position() - skew);
    skew = await settledSkew(final, live);
  }
  if (!live.playing) { // paused meanwhile: the final files take over paused, where it stopped
    final.pause();
    final.master.gain.value = 1;
    final.seek(live.position());
    live.close({ keepContext: true });
    return { skew_s: skew, crossfaded: false };
  }
  const at = live.context.currentTime + 0.01;
  for (const [gain, from, to] of [[live.master.gain, 1, 0], [final.master.gain, 0, 1]]) {
    gain.setValueAtTime(from, at);
    gain.linearRampToValueAtTime(to, at + CROSSFADE_S);
  }
  await new Promise((resolve) => setTimeout(resolve, (CROSSFADE_S + 0.05) * 1000));
  live.close({ keepContext: true });
  return { skew_s: skew, crossfaded: true };
}

/** The final player's position minus the live one, once the media elements have started moving. */
async function settledSkew(final, live) {
  const leader = final.leader;
  if (leader.seeking) await new Promise((resolve) => leader.addEventListener("seeked", resolve, { once: true }));
  const from = final.position();
  // Timers, not animation frames: those stop in a background tab, and the hand-over must not.
  for (let turns = 0; turns < 30 && final.position() === from; turns += 1) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return final.position() - live.position();
}
