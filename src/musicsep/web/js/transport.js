// The player's controls: Play/Pause, the position slider and clock, seeking by clicking or
// dragging any waveform (Shift+drag marks a loop), the A-B loop buttons, tempo, the beat click
// and the keyboard (Space plays or pauses, the arrow keys move 5 s, with Shift 1 s). The same
// controls drive the live player while the job runs (live.js): it says what it is doing in the
// status line, shows how far the stems are ready, and has no tempo or click yet.

import { paintPosition } from "./waveform.js";

const $ = (id) => document.getElementById(id);
const SEEK_STEP_S = 5;
const FINE_STEP_S = 1;

export function formatTime(seconds) {
  const whole = Math.max(0, Math.floor(seconds || 0));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function secondsAt(lane, event, duration) {
  const box = lane.getBoundingClientRect();
  return (Math.min(Math.max(0, event.clientX - box.left), box.width) / Math.max(1, box.width)) * duration;
}

function bindLanes(player, lanes) {
  for (const lane of lanes) {
    lane.addEventListener("pointerdown", (down) => {
      const from = secondsAt(lane, down, player.duration);
      const marking = down.shiftKey;
      lane.setPointerCapture(down.pointerId);
      const move = (event) => {
        const at = secondsAt(lane, event, player.duration);
        if (marking) player.setLoop(from, at);
        else player.seek(at);
      };
      move(down);
      lane.onpointermove = move;
      lane.onpointerup = () => { lane.onpointermove = null; };
    });
  }
}

// Keys go to the player unless the focus is on something that uses them itself.
function wantsKeys(target) {
  return target.closest("input, select, textarea, button, a, summary, [contenteditable]") !== null;
}

function bindKeys(player) {
  document.onkeydown = (event) => {
    if ($("result").hidden || wantsKeys(event.target) || event.altKey || event.ctrlKey || event.metaKey) return;
    const step = event.shiftKey ? FINE_STEP_S : SEEK_STEP_S;
    if (event.key === " ") player.toggle();
    else if (event.key === "ArrowLeft") player.seek(player.position() - step);
    else if (event.key === "ArrowRight") player.seek(player.position() + step);
    else return;
    event.preventDefault();
  };
}

/** The loop buttons, tempo and click; returns what the loop line says now. */
function bindPractice(player) {
  let pointA = null; // A is marked, B not yet
  $("loop-a").onclick = () => {
    pointA = player.position();
    player.onChange();
  };
  $("loop-b").onclick = () => {
    player.setLoop(pointA ?? 0, player.position());
    pointA = null;
  };
  $("loop-clear").onclick = () => {
    pointA = null;
    player.clearLoop();
  };
  const tempo = $("tempo");
  tempo.value = "1";
  tempo.oninput = () => player.setRate(Number(tempo.value));
  tempo.disabled = !player.canChangeRate;
  $("click").checked = false;
  $("click").onchange = () => { player.clickOn = $("click").checked; };
  $("click").disabled = player.beats.length === 0;
  $("practice-note").hidden = !player.live;
  return () => {
    if (pointA !== null) return `A at ${formatTime(pointA)}: now set B`;
    return player.loop.on ? `Loop ${formatTime(player.loop.a)}–${formatTime(player.loop.b)}` : "No loop";
  };
}

let bindings = 0; // the controls follow the player bound last (the live one until the hand-over)

/** Wire the controls to `player`; `lanes` are the waveform lanes, `rows` the stem rows. */
export function bindTransport(player, lanes, rows) {
  const binding = ++bindings;
  const play = $("play");
  const seek = $("seek");
  const clock = $("clock");
  seek.max = String(player.duration);
  seek.value = String(player.position());
  let dragging = false; // while the thumb is held, the clock must not pull it back
  seek.onpointerdown = () => { dragging = true; };
  seek.onpointerup = () => { dragging = false; };
  seek.oninput = () => player.seek(Number(seek.value));
  play.onclick = () => player.toggle();

  const status = $("player-status");
  const show = () => {
    if (binding !== bindings) return; // a frame of a player that has handed over
    const position = player.position();
    seek.max = String(player.duration); // a live track's length is known once its end arrives
    if (player.live) {
      const { state, text } = player.status();
      status.textContent = text;
      status.dataset.state = state;
      $("transport").dataset.state = state;
    }
    play.textContent = player.playing ? "Pause" : "Play";
    play.setAttribute("aria-label", player.playing ? "Pause" : "Play");
    if (!dragging) seek.value = String(position);
    clock.textContent = `${formatTime(position)} / ${formatTime(player.duration)}`;
    clock.dataset.seconds = position.toFixed(3);
    paintPosition(lanes, position, player.duration, player.loop, player.live ? player.readyS() : null);
    $("loop-text").textContent = loopLine();
    $("tempo-text").textContent = `${Math.round(player.rate * 100)}%`;
    const gains = player.gains();
    for (const row of rows) row.classList.toggle("silent", gains[row.dataset.stem] === 0);
  };
  const frame = () => {
    show();
    if (player.playing) requestAnimationFrame(frame);
  };
  player.onChange = () => requestAnimationFrame(frame);
  bindLanes(player, lanes);
  bindKeys(player);
  const loopLine = bindPractice(player);
  show();
}
