// The library: this server's jobs (GET /api/v1/jobs), newest first, each with its title, the
// model that ran, its stems, format and date; searched in the page over the loaded list; each
// can be reopened, renamed (PATCH), deleted (DELETE) or, while it runs, cancelled.

import { cancelJob, deleteJob, listJobs, renameJob } from "./api.js";

const $ = (id) => document.getElementById(id);
const UNFINISHED = new Set(["queued", "running"]);
const REFRESH_MS = 3000; // while a job in the list is still queued or running

const library = { jobs: [], open: () => {}, timer: null, onDeleted: () => {} };

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function jobTitle(job) {
  return job.title || job.source_name || `Job ${job.id.slice(0, 8)}`;
}

function stemNames(job) {
  if (job.stems) return Object.keys(job.stems);
  const options = job.options || {};
  if (options.two_stems) return [options.two_stems, `no_${options.two_stems}`];
  return options.stems || [];
}

function details(job) {
  const model = job.fallback ? `${job.model} (instead of ${job.fallback.from})` : job.model;
  const stems = stemNames(job);
  return [model, stems.length ? stems.join(", ").replaceAll("_", " ") : "all stems",
    (job.options?.format || "").toUpperCase(), when(job.created_at), job.status].filter(Boolean).join(" · ");
}

function matches(job, words) {
  const text = [jobTitle(job), job.source_name, job.model, job.requested_model, job.status].join(" ").toLowerCase();
  return words.every((word) => text.includes(word));
}

function button(label, ariaLabel, onClick, className = "link") {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = label;
  element.setAttribute("aria-label", ariaLabel);
  element.addEventListener("click", onClick);
  return element;
}

function showProblem(problem) {
  const line = $("library-error");
  line.textContent = problem ? problem.message : "";
  line.hidden = !problem;
}

function renameForm(job, item) {
  const form = document.createElement("form");
  form.className = "rename";
  const input = document.createElement("input");
  input.type = "text";
  input.value = job.title || "";
  input.maxLength = 200;
  input.setAttribute("aria-label", `New title for ${jobTitle(job)}`);
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Save";
  form.append(input, save, button("Cancel", "Cancel renaming", () => render(), "link"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const renamed = await renameJob(job.id, input.value.trim());
      library.jobs = library.jobs.map((known) => (known.id === job.id ? renamed : known));
      showProblem(null);
      render();
    } catch (problem) {
      showProblem(problem);
    }
  });
  item.replaceChildren(form);
  input.focus();
}

async function remove(job) {
  const running = UNFINISHED.has(job.status);
  const question = running ? `Cancel “${jobTitle(job)}”?` : `Delete “${jobTitle(job)}” and its files?`;
  if (!window.confirm(question)) return;
  try {
    await (running ? cancelJob(job.id) : deleteJob(job.id));
    showProblem(null);
    if (!running) library.onDeleted(job.id);
  } catch (problem) {
    showProblem(problem);
  }
  await refreshLibrary();
}

function row(job) {
  const item = document.createElement("li");
  item.dataset.jobId = job.id;
  item.dataset.status = job.status;
  const title = button(jobTitle(job), `Open ${jobTitle(job)}`, () => library.open(job.id), "link title");
  const meta = document.createElement("p");
  meta.className = "hint";
  meta.textContent = details(job);
  const actions = document.createElement("div");
  actions.className = "library-actions";
  const running = UNFINISHED.has(job.status);
  actions.append(button("Rename", `Rename ${jobTitle(job)}`, () => renameForm(job, item)),
    button(running ? "Cancel" : "Delete", `${running ? "Cancel" : "Delete"} ${jobTitle(job)}`, () => remove(job)));
  item.append(title, meta, actions);
  return item;
}

function render() {
  const list = $("library-list");
  const words = $("library-search").value.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = library.jobs.filter((job) => matches(job, words));
  if (!shown.length) {
    const empty = document.createElement("li");
    empty.className = "hint";
    empty.textContent = library.jobs.length ? "No job matches." : "No jobs yet.";
    list.replaceChildren(empty);
    return;
  }
  list.replaceChildren(...shown.map(row));
}

/** Reload the list from the server. Errors leave the list as it was (the form says why). */
export async function refreshLibrary() {
  clearTimeout(library.timer);
  try {
    ({ jobs: library.jobs } = await listJobs());
  } catch {
    return;
  }
  if (!document.querySelector("#library-list form.rename")) render();
  if (library.jobs.some((job) => UNFINISHED.has(job.status))) library.timer = setTimeout(refreshLibrary, REFRESH_MS);
}

/** `open(jobId)` reopens a job; `onDeleted(jobId)` is told when a finished job was deleted. */
export function startLibrary(open, onDeleted) {
  library.open = open;
  library.onDeleted = onDeleted;
  $("library-search").addEventListener("input", render);
  return refreshLibrary();
}
