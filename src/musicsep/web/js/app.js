// The page: choose a song and options, follow the job live, then hand over to the mixer.
// The job being shown is kept in the address (#job=<id>) so a reload reopens it.

import { apiKey, cancelJob, createJob, fetchLinkedAudio, getJob, listModels, setApiKey } from "./api.js";
import { followJob } from "./events.js";
import { refreshRecent } from "./recent.js";
import { renderResult } from "./result.js";

const $ = (id) => document.getElementById(id);
const TERMINAL_STATUSES = ["completed", "failed", "cancelled", "expired"];
const TOKENS = "musicsep.eventUrls"; // job id -> events_url (it carries the stream token when auth is on)

const state = { jobId: null, follower: null, mixer: null, percent: 0, models: new Map() };
window.musicsep = { state, get mixer() { return state.mixer; } };

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
  const label = `${model.name}${family}${model.name === fallback ? " (server default)" : ""}`;
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
  const figures = Object.entries(quality.sdr).map(([stem, value]) => `${stem} ${value.toFixed(2)} dB`).join(", ");
  return ` Published SDR: ${figures} (${quality.basis}; ${quality.source}).`;
}

function describeModel() {
  const model = state.models.get($("model").value);
  const stems = model?.stems || [];
  const members = model?.members?.length ? ` Combines: ${model.members.join(", ")}.` : "";
  $("model-stems").textContent = stems.length
    ? `Stems: ${stems.join(", ")}. ${model.description}${members}${qualityText(model.quality)}` : "";
  const karaoke = document.querySelector('input[name="mode"][value="karaoke"]');
  karaoke.disabled = stems.length > 0 && !stems.includes("vocals");
  if (karaoke.disabled && karaoke.checked) document.querySelector('input[name="mode"][value="all"]').checked = true;
}

function chosenFileLabel() {
  const file = $("file").files[0];
  $("drop-text").textContent = file ? `Chosen: ${file.name}` : "Drop a song here, or choose a file";
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

async function submit(event) {
  event.preventDefault();
  const form = $("job-form");
  showError($("form-error"), null);
  const file = $("file").files[0];
  const link = $("url").value.trim();
  if (!file && !link) {
    showError($("form-error"), new Error("Choose a song file, drop one on the box, or paste a link first."));
    return;
  }
  $("submit").disabled = true;
  try {
    const source = file ? { blob: file, name: file.name } : await fetchLinkedAudio(link);
    const options = {
      model: $("model").value,
      format: $("format").value,
      shifts: $("shifts").value,
      two_stems: form.elements.mode.value === "karaoke" ? "vocals" : null,
    };
    const accepted = await createJob(source.blob, source.name, options);
    rememberEventsUrl(accepted.job_id, accepted.events_url);
    openJob(accepted.job_id, accepted);
    refreshRecent(openJob);
  } catch (problem) {
    showError($("form-error"), problem);
  } finally {
    $("submit").disabled = false;
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

function setProgress(percent) {
  // The server never sends a smaller percent within a run; holding the maximum keeps the bar
  // from stepping back even if an event were ever replayed out of order.
  state.percent = Math.max(state.percent, Math.min(100, percent));
  $("progress").value = state.percent;
  $("progress").setAttribute("aria-valuetext", `${Math.round(state.percent)} percent`);
  $("progress-text").textContent = `${Math.floor(state.percent)}%`;
}

function describeProgress(data) {
  const parts = [`Stage: ${data.stage}`];
  if (data.chunks) parts.push(`chunk ${data.chunk} of ${data.chunks}`);
  if (data.eta_s !== null && data.eta_s !== undefined) parts.push(`about ${Math.ceil(data.eta_s)} s left`);
  $("progress-detail").textContent = parts.join(" · ");
}

function setStatus(text, running) {
  $("job-status").textContent = text;
  $("cancel").hidden = !running;
  document.body.dataset.phase = running ? "running" : "idle";
}

async function finish(job) {
  $("cancel").hidden = true;
  if (job.status === "completed") {
    setProgress(100);
    $("progress-detail").textContent = "";
    setStatus("Done.", false);
    document.body.dataset.phase = "done";
    try {
      state.mixer = await renderResult(job, state.mixer);
    } catch (problem) {
      showError($("job-error"), problem);
    }
  } else if (job.status === "failed") {
    setStatus("Failed.", false);
    showError($("job-error"), new Error(job.error?.message || "The separation failed."));
  } else if (job.status === "cancelled") {
    setStatus("Cancelled.", false);
  } else if (job.status === "expired") {
    setStatus("Expired: the results were removed.", false);
  }
  refreshRecent(openJob);
}

function onEvent(type, data, id) {
  logEvent(type, data, id);
  if (type === "queued") {
    setStatus(data.position > 0 ? `Waiting: number ${data.position} in the queue.` : "Starting…", true);
  } else if (type === "started") {
    state.percent = 0;
    setProgress(0);
    const instead = data.fallback_reason ? ` (instead of ${data.requested_model}: ${data.fallback_reason})` : "";
    setStatus(`Separating with ${data.model} on ${data.device}${instead}…`, true);
  } else if (type === "progress") {
    setProgress(data.percent);
    describeProgress(data);
  } else if (type === "completed" || type === "failed" || type === "cancelled") {
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

/** Show job `jobId`: the record decides whether to follow its events or show its result. */
export async function openJob(jobId, accepted = null) {
  if (state.follower) state.follower.stop();
  if (state.mixer) state.mixer.close();
  state.mixer = null;
  state.jobId = jobId;
  state.percent = 0;
  history.replaceState(null, "", `#job=${encodeURIComponent(jobId)}`);
  $("job").hidden = false;
  $("result").hidden = true;
  $("event-log").replaceChildren();
  $("stems").replaceChildren();
  delete $("stems").dataset.ready;
  showError($("job-error"), null);
  $("job-title").textContent = `Job ${jobId.slice(0, 8)}`;
  setProgress(0);
  $("progress-detail").textContent = "";
  try {
    const job = accepted ? { status: accepted.status } : await getJob(jobId);
    if (TERMINAL_STATUSES.includes(job.status)) {
      await finish(accepted ? await getJob(jobId) : job);
      return;
    }
    setStatus("Queued.", true);
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
    refreshRecent(openJob);
  });
  $("model").addEventListener("change", describeModel);
  $("job-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", cancel);
  bindDropZone();
  document.body.dataset.phase = "idle";
  loadModels();
  refreshRecent(openJob);
  const match = /^#job=([\w-]+)$/.exec(location.hash);
  if (match) openJob(decodeURIComponent(match[1]));
}

start();
