// Recent jobs (GET /api/v1/jobs), newest first; each one reopens in the page.

import { listJobs } from "./api.js";

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

/** Fill the list; `open(jobId)` is called when a job is chosen. Errors leave the list as it was. */
export async function refreshRecent(open) {
  const list = document.getElementById("recent-list");
  let jobs;
  try {
    ({ jobs } = await listJobs(10));
  } catch {
    return; // the form shows why the server cannot be used; a stale list is harmless
  }
  if (!jobs.length) {
    const empty = document.createElement("li");
    empty.className = "hint";
    empty.textContent = "No jobs yet.";
    list.replaceChildren(empty);
    return;
  }
  list.replaceChildren(...jobs.map((job) => {
    const item = document.createElement("li");
    item.dataset.jobId = job.id;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = `${job.id.slice(0, 8)} · ${job.model} · ${job.status}`;
    button.setAttribute("aria-label", `Open job ${job.id.slice(0, 8)} (${job.status}, ${when(job.created_at)})`);
    button.addEventListener("click", () => open(job.id));
    const time = document.createElement("span");
    time.className = "hint";
    time.textContent = ` ${when(job.created_at)}`;
    item.append(button, time);
    return item;
  }));
}
