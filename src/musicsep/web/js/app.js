// The page: choose one song or several and the options, follow a job live — listening to its
// stems while they are separated (live.js) — then hand over to the player of the final files.
// The job being shown is kept in the address (#job=<id>) so a reload reopens it.

import { apiKey, cancelJob, createJob, fetchLinkedAudio, getJob, getLive, listModels, setApiKey } from "./api.js";
import { followJob } from "./events.js";
import { jobTitle, refreshLibrary, startLibrary } from "./library.js";
import { LivePlayer } from "./live.js";
import { JobProgress } from "./progress.js";
import { renderLive, renderResult } from "./result.js";
import { bindStemChoice, offerStems, stemFields } from "./stemchoice.js";

const $ = (id) => document.getElementById(id);
const TERMINAL_STATUSES = ["completed", "failed", "cancelled", "expired"];
const isAnalysing = (stage) => /^analy/.test(stage || "");
const LIVE_RETRY_MS = 1000; // how often a running job is asked whether its engine has begun
const TOKENS = "musicsep.eventUrls"; // job id -> events_url (it carries the stream token when auth is on)

// `timeline`: performance.now() of the moments a job goes through on this page (read by the
// time-to-first-audio bench); `submitted`: the jobs sent from this page, which may start playing
// by themselves (the click on Separate allowed the page to play sound).
const state = { jobId: null, follower: null, player: null, progress: new JobProgress(), models: new Map(),
  timeline: {}, submitted: new Set(), ended: null, live: new Set(), started: null, liveRetry: null };
window.musicsep = { state, get player() { return state.player; }, get timeline() { return state.timeline; } };

function showError(element, problem) {
  element.textContent = problem ? problem.message || String(problem) : "";
  element.hidden = !problem;
}

function rememberEventsUrl(jobId, url) {
  const known = JSON.parse(localStorage.getItem(TOKENS) || "{}");
  known[jobId] = url;
  const recent = Object.fromEntries(Object.entries(known).slice(-50));
  localStorage.setItem(TOKENS, JSON.stringify(recent));
}

function eventsUrl(jobId) {
  const known = JSON.parse(localStorage.getItem(TOKENS) || "{}");
  return known[jobId] || `/api/v1/jobs/${encodeURIComponent(jobId)}/events`;
}

// --- the form --------------------------------------------------------------------------------

const ARCH_LABELS = {
  demucs: "Demucs", mdx: "MDX-Net", bs_roformer: "BS-RoFormer", mel_band_roformer: "Mel-Band RoFormer",
  mdx23c: "MDX23C", dsp: "DSP", ensemble: "Ensemble",
};

function modelOption(model, fallback) {
  const family = ARCH_LABELS[model.arch] ? ` · ${ARCH_LABELS[model.arch]}` : "";
  const missing = model.installed === false ? " (not installed)" : "";
  const label = `${model.name}${family}${model.name === fallback ? " (server default)" : ""}${missing}`;
  const option = new Option(label, model.name);
  option.selected = model.name === fallback;
  return option;
}

async function loadModels() {
  const select = $("model");
  showError($("form-error"), null);
  try {
    const { models, default: fallback } = await listModels();
    for (const model of models) state.models.set(model.name, model);
    if (!state.models.has(fallback)) state.models.set(fallback, { name: fallback, stems: [], description: "" });
    const all = [...state.models.values()];
    const singles = document.createElement("optgroup");
    singles.label = "Models";
    singles.append(...all.filter((model) => model.arch !== "ensemble").map((model) => modelOption(model, fallback)));
    const ensembles = document.createElement("optgroup");
    ensembles.label = "Ensembles (several models combined)";
    ensembles.append(...all.filter((model) => model.arch === "ensemble").map((model) => modelOption(model, fallback)));
    select.replaceChildren(...[singles, ensembles].filter((group) => group.children.length));
    describeModel();
  } catch (problem) {
    showError($("form-error"), problem);
  }
}

function qualityText(quality) {
  if (!quality) return "";
  if (typeof quality === "string") return ` ${quality}`;
  const note = quality.note ? ` ${quality.note}` : "";
  if (!quality.sdr) return note;
  const figures = Object.entries(quality.sdr).map(([stem, value]) => `${stem} ${value.toFixed(2)} dB`).join(", ");
  return ` Published SDR: ${figures} (${quality.basis}; ${quality.source}).${note}`;
}

// What this server can say about a model: whether its weights are here, how fast it has run.
function hereText(model) {
  const parts = [];
  if (model.installed === true) parts.push("Installed here.");
  if (model.installed === false) parts.push("Not installed here: its weights are downloaded on first use.");
  const factor = model.speed?.realtime_factor;
  if (typeof factor === "number") {
    const jobs = model.speed.jobs ? ` (${model.speed.jobs} job${model.speed.jobs === 1 ? "" : "s"})` : "";
    parts.push(`On this server: ${factor.toFixed(1)}× real time${jobs}.`);
  }
  return parts.length ? ` ${parts.join(" ")}` : "";
}

function describeModel() {
  const model = state.models.get($("model").value);
  const stems = model?.stems || [];
  const members = model?.members?.length ? ` Combines: ${model.members.join(", ")}.` : "";
  const about = stems.length
    ? `Stems: ${stems.join(", ")}. ${model.description}${members}${qualityText(model.quality || model.quality_note)}` : "";
  $("model-stems").textContent = `${about}${model ? hereText(model) : ""}`.trim();
  offerStems(stems);
}

function chosenFileLabel() {
  const files = [...$("file").files];
  $("drop-text").textContent = files.length === 1 ? `Chosen: ${files[0].name}`
    : files.length ? `Chosen: ${files.length} songs (${files.map((file) => file.name).join(", ")})`
      : "Drop songs here, or choose files";
  $("title").disabled = files.length > 1; // several songs: each is titled after its file
}

function bindDropZone() {
  const zone = $("drop-zone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer?.files?.length) {
      $("file").files = event.dataTransfer.files;
      chosenFileLabel();
    }
  });
  $("file").addEventListener("change", chosenFileLabel);
}

function formOptions(stemChoice) {
  return { model: $("model").value, format: $("format").value, shifts: $("shifts").value, ...stemChoice };
}

async function submit(event) {
  event.preventDefault();
  showError($("form-error"), null);
  const files = [...$("file").files];
  const link = $("url").value.trim();
  if (!files.length && !link) {
    showError($("form-error"), new Error("Choose a song file, drop one on the box, or paste a link first."));
    return;
  }
  const stemChoice = stemFields();
  if (!stemChoice) return; // "Choose stems" with none ticked: the message is next to the boxes
  $("submit").disabled = true;
  const accepted = [];
  state.timeline = { submitted: performance.now() };
  try {
    const sources = files.length ? files.map((file) => ({ blob: file, name: file.name }))
      : [await fetchLinkedAudio(link)];
    const title = sources.length === 1 ? $("title").value.trim() : "";
    // One at a time: each upload is a job of its own, queued in the order chosen.
    for (const source of sources) {
      const job = await createJob(source.blob, source.name, { ...formOptions(stemChoice), title });
      rememberEventsUrl(job.job_id, job.events_url);
      state.submitted.add(job.job_id);
      accepted.push(job);
    }
  } catch (problem) {
    showError($("form-error"), problem);
  } finally {
    $("submit").disabled = false;
    if (accepted.length) {
      $("title").value = ""; // a title is for the song it was typed for
      openJob(accepted[0].job_id, accepted[0]);
    }
    refreshLibrary();
  }
}

// --- one job ---------------------------------------------------------------------------------

function logEvent(type, data, id) {
  const item = document.createElement("li");
  item.dataset.eventId = String(id);
  item.dataset.type = type;
  const detail = type === "progress" ? ` ${data.stage} ${data.percent.toFixed(1)}%`
    : type === "queued" ? ` position ${data.position}` : type === "stem" ? ` ${data.name}` : "";
  item.textContent = `#${id} ${type}${detail}`;
  $("event-log").append(item);
}

function showProgress() {
  // JobProgress never gives a smaller percent within a run, so the bar never steps back even if
  // an event were ever replayed out of order.
  const { percent, detail, stage } = state.progress;
  $("progress").value = percent;
  $("progress").setAttribute("aria-valuetext", `${Math.round(percent)} percent`);
  $("progress-text").textContent = `${Math.floor(percent)}%`;
  $("progress-detail").textContent = detail;
  $("job").dataset.stage = stage;
}

function setStatus(text, running) {
  $("job-status").textContent = text;
  $("cancel").hidden = !running;
  document.body.dataset.phase = running ? "running" : "idle";
}

/** The job runs: its stems can be heard as they are separated, when the server offers it. Asked
 * at `started`, at each `progress` and every second until the engine has begun (the answer then
 * has a rate and the stems), so that the first segment's request already waits on the server when
 * the first chunk ends: a chunk can take long and send no event meanwhile. */
async function startLive(jobId, started) {
  if (state.player || state.live.has(jobId)) return;
  state.live.add(jobId);
  clearTimeout(state.liveRetry);
  const token = new URL(eventsUrl(jobId), window.location.href).searchParams.get("token");
  let info = null;
  let offered = true; // false: a server without live stems (404) or with them off (409)
  try {
    info = await getLive(jobId, token);
  } catch (problem) {
    offered = problem.status !== 404 && problem.status !== 409;
  }
  const current = state.jobId === jobId && state.ended !== jobId;
  if (!info?.samplerate || !info.stems?.length) {
    state.live.delete(jobId);
    if (current && offered) state.liveRetry = setTimeout(() => startLive(jobId, started), LIVE_RETRY_MS);
    return;
  }
  if (!current) return;
  const live = new LivePlayer(jobId, info, { durationS: started?.duration_s ?? null, token });
  state.player = live;
  live.timeline.submitted = state.timeline.submitted;
  state.timeline.live = live.timeline;
  renderLive(live);
  live.start({ autoplay: state.submitted.has(jobId) });
}

async function finish(job) {
  state.ended = job.id;
  clearTimeout(state.liveRetry);
  $("cancel").hidden = true;
  $("job-title").textContent = jobTitle(job);
  if (job.status === "completed") {
    state.progress.completed();
    showProgress();
    setStatus("Done.", false);
    document.body.dataset.phase = "done";
    try {
      // Another job may have been opened while the stems loaded: its view must stay.
      const player = await renderResult(job, state.player, () => state.jobId === job.id);
      if (state.jobId === job.id) state.player = player;
      else player.close();
    } catch (problem) {
      showError($("job-error"), problem);
    }
  } else if (state.player?.live) {
    state.player.close(); // a cancelled or failed job's live stems end here
    state.player = null;
    $("result").hidden = true;
  }
  if (job.status === "failed") {
    setStatus("Failed.", false);
    showError($("job-error"), new Error(job.error?.message || "The separation failed."));
  } else if (job.status === "cancelled") {
    setStatus("Cancelled.", false);
  } else if (job.status === "expired") {
    setStatus("Expired: the results were removed.", false);
  }
  refreshLibrary();
}

function onEvent(type, data, id) {
  logEvent(type, data, id);
  if (type === "queued") {
    setStatus(data.position > 0 ? `Waiting: number ${data.position} in the queue.` : "Starting…", true);
  } else if (type === "started") {
    state.progress.reset();
    showProgress();
    const instead = data.fallback_reason ? ` (instead of ${data.requested_model}: ${data.fallback_reason})` : "";
    setStatus(`Separating with ${data.model} on ${data.device}${instead}…`, true);
    state.timeline.started = performance.now();
    state.started = data;
    startLive(state.jobId, data);
  } else if (type === "progress") {
    state.progress.progress(data);
    showProgress();
    if (state.player?.live) state.player.serverProgress(data);
    else if (!isAnalysing(data.stage)) startLive(state.jobId, state.started);
  } else if (type === "analysis") {
    state.progress.analysed();
    showProgress();
  } else if (type === "completed" || type === "failed" || type === "cancelled") {
    state.timeline[type] = performance.now();
    // The job record carries fresh signed links and the analysis in one answer.
    getJob(state.jobId).then(finish, (problem) => showError($("job-error"), problem));
  }
}

function onConnection(status, reconnects) {
  const line = $("connection");
  line.dataset.state = status;
  line.dataset.reconnects = String(reconnects);
  line.textContent = status === "reconnecting" ? "Connection lost — reconnecting…"
    : status === "live" && reconnects > 0 ? "Reconnected." : "";
}

function hideJob() {
  clearTimeout(state.liveRetry);
  if (state.follower) state.follower.stop();
  if (state.player) state.player.close();
  state.player = null;
  state.follower = null;
  state.jobId = null;
  $("job").hidden = true;
  $("result").hidden = true;
  history.replaceState(null, "", location.pathname);
}

/** Show job `jobId`: the record decides whether to follow its events or show its result. */
export async function openJob(jobId, accepted = null) {
  hideJob();
  state.jobId = jobId;
  state.ended = null;
  state.started = null;
  state.live.clear();
  state.progress.reset();
  history.replaceState(null, "", `#job=${encodeURIComponent(jobId)}`);
  $("job").hidden = false;
  $("event-log").replaceChildren();
  $("stems").replaceChildren();
  delete $("stems").dataset.ready;
  showError($("job-error"), null);
  $("job-title").textContent = `Job ${jobId.slice(0, 8)}`;
  showProgress();
  try {
    const job = await getJob(jobId);
    $("job-title").textContent = jobTitle(job);
    if (TERMINAL_STATUSES.includes(job.status)) {
      await finish(job);
      return;
    }
    setStatus("Queued.", true);
    $("job").scrollIntoView({ block: "start" });
    state.follower = followJob(accepted ? accepted.events_url : eventsUrl(jobId), {
      onEvent,
      onConnection,
      onGiveUp: async () => {
        try {
          const current = await getJob(jobId);
          if (!TERMINAL_STATUSES.includes(current.status)) return false;
          finish(current);
          return true;
        } catch (problem) {
          if (problem.status === 404 || problem.status === 410) {
            showError($("job-error"), problem);
            return true;
          }
          return false;
        }
      },
    });
  } catch (problem) {
    showError($("job-error"), problem);
  }
}

async function cancel() {
  $("cancel").disabled = true;
  try {
    await cancelJob(state.jobId);
    $("job-status").textContent = "Cancelling…";
  } catch (problem) {
    showError($("job-error"), problem);
  } finally {
    $("cancel").disabled = false;
  }
}

// --- start -----------------------------------------------------------------------------------

function start() {
  $("api-key").value = apiKey();
  $("api-key").addEventListener("change", () => {
    setApiKey($("api-key").value.trim());
    loadModels();
    refreshLibrary();
  });
  $("model").addEventListener("change", describeModel);
  $("job-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", cancel);
  bindDropZone();
  bindStemChoice();
  document.body.dataset.phase = "idle";
  loadModels();
  startLibrary(openJob, (jobId) => { if (jobId === state.jobId) hideJob(); });
  const match = /^#job=([\w-]+)$/.exec(location.hash);
  if (match) openJob(decodeURIComponent(match[1]));
}

start();
