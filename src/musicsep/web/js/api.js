// The public HTTP API (docs/server.md), and its errors turned into plain words.

const KEY_STORE = "musicsep.apiKey";

export function apiKey() {
  return localStorage.getItem(KEY_STORE) || "";
}

export function setApiKey(value) {
  if (value) localStorage.setItem(KEY_STORE, value);
  else localStorage.removeItem(KEY_STORE);
}

/** An error a person can act on: `message` is already in plain words. */
export class ApiProblem extends Error {
  constructor(message, { status = 0, code = "", retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

function plainWords(status, code, serverMessage, retryAfter) {
  switch (code) {
    case "content_too_large":
      return `This file is too large for this server (${serverMessage}).`;
    case "unsupported_format":
      return "This is not an audio file the server can read. Try WAV, FLAC, MP3, Ogg or M4A.";
    case "invalid_audio":
      return "The audio in this file is damaged or empty, so it cannot be separated.";
    case "audio_too_long":
      return `This song is too long for this server (${serverMessage}).`;
    case "queue_full":
    case "busy":
      return `The server is busy — try again in ${retryAfter ?? 10} s.`;
    case "queue_unavailable":
      return `The server cannot take jobs right now — try again in ${retryAfter ?? 10} s.`;
    case "model_unavailable":
      return "This model is not available on this server. Choose another one.";
    case "unauthorized":
      return "This server needs an API key: enter it under “Server key” at the top.";
    case "job_finished":
      return "This job has already finished, so there is nothing to cancel.";
    case "job_not_completed":
      return "This job has not finished yet, so there is no mix to export.";
    case "job_not_found":
      return "This job does not exist on this server any more.";
    case "job_expired":
      return "This job's results have expired and were removed.";
    case "invalid_options":
    case "invalid_request":
      return `Some options are not valid: ${serverMessage}`;
    default:
      return status >= 500 ? "The server had a problem. Try again in a moment." : serverMessage || `HTTP ${status}`;
  }
}

async function problemFrom(response) {
  let code = "";
  let message = "";
  try {
    const body = await response.json();
    code = body?.error?.code || "";
    message = body?.error?.message || "";
  } catch {
    // Not the error envelope (a proxy's page, say): the status alone must do.
  }
  const header = response.headers.get("Retry-After");
  const retryAfter = header && /^\d+$/.test(header) ? Number(header) : null;
  return new ApiProblem(plainWords(response.status, code, message, retryAfter),
    { status: response.status, code, retryAfter });
}

/** Whether `url` is on this page's own server. Stems kept in S3 come as presigned links to the
 * bucket: the API key must not travel there (the bucket would see it, and it refuses a request
 * that carries a second authorisation anyway), as in the Python clients (clients/common.py). */
export function sameOrigin(url) {
  return new URL(url, window.location.href).origin === window.location.origin;
}

/** fetch with the API key (when one is set, to this server only) and errors as ApiProblem. */
export async function request(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = apiKey();
  if (key && sameOrigin(path)) headers.set("Authorization", `Bearer ${key}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch {
    throw new ApiProblem("Cannot reach the server. Check your connection and try again.");
  }
  if (!response.ok) throw await problemFrom(response);
  return response;
}

export async function getJson(path) {
  return (await request(path)).json();
}

export const listModels = () => getJson("/api/v1/models");
export const listJobs = (limit = 100) => getJson(`/api/v1/jobs?limit=${limit}`);
export const getJob = (id) => getJson(`/api/v1/jobs/${encodeURIComponent(id)}`);
/** `?token=…` of a job's per-job stream token (from its `events_url`), or "" without one: the live
 * routes take it as the event stream does, for a page that has the token but no API key. */
export const tokenQuery = (token) => (token ? `token=${encodeURIComponent(token)}` : "");

/** What can be heard of a running job: rate, channels, segment size, how far it is ready, level. */
export const getLive = (id, token = null) => getJson(`/api/v1/jobs/${encodeURIComponent(id)}/live?${tokenQuery(token)}`);

const jobPath = (id) => `/api/v1/jobs/${encodeURIComponent(id)}`;
const JSON_HEADERS = { "Content-Type": "application/json" };

/** PATCH the title (an empty one goes back to the song's file name); answers the job view. */
export async function renameJob(id, title) {
  const body = JSON.stringify({ title: title || null });
  return (await request(jobPath(id), { method: "PATCH", headers: JSON_HEADERS, body })).json();
}

/** Cancel a queued or running job; a finished one is left as it is (409 job_finished). */
export async function cancelJob(id) {
  return (await request(`${jobPath(id)}/cancel`, { method: "POST" })).json();
}

/** DELETE: a queued or running job is cancelled (its view comes back), a finished one is removed
 * with its files (204, nothing comes back: null). */
export async function deleteJob(id) {
  const response = await request(jobPath(id), { method: "DELETE" });
  return response.status === 204 ? null : response.json();
}

function fileName(disposition, fallback) {
  const encoded = /filename\*=UTF-8''([^;]+)/i.exec(disposition || "");
  if (encoded) return decodeURIComponent(encoded[1]);
  const plain = /filename="([^"]+)"/i.exec(disposition || "");
  return plain ? plain[1] : fallback;
}

/** The server renders the mix of `gains` (stem -> 0..2) as one file, named after the song.
 * `job.mix_url` is signed like the stem links; without it the API key has to do. */
export async function exportMix(job, gains, format) {
  const body = JSON.stringify({ gains, format });
  const url = job.mix_url || `${jobPath(job.id)}/mix`;
  const response = await request(url, { method: "POST", headers: JSON_HEADERS, body });
  return { blob: await response.blob(), filename: fileName(response.headers.get("Content-Disposition"), "mix.wav") };
}

/** POST /api/v1/jobs: `file` is a File or Blob, `options` the form fields (absent ones left out). */
export async function createJob(file, name, options) {
  const form = new FormData();
  form.append("file", file, name);
  for (const [field, value] of Object.entries(options)) {
    if (value !== null && value !== undefined && value !== "") form.append(field, String(value));
  }
  return (await request("/api/v1/jobs", { method: "POST", body: form })).json();
}

/** Audio behind a pasted link, fetched by the browser (the server takes uploads only). */
export async function fetchLinkedAudio(url) {
  let response;
  try {
    response = await fetch(url);
  } catch {
    throw new ApiProblem("That link could not be read from this browser (the site may not allow it). " +
      "Download the file and choose it instead.");
  }
  if (!response.ok) throw new ApiProblem(`That link answered HTTP ${response.status}.`);
  const name = decodeURIComponent(new URL(url).pathname.split("/").pop() || "linked-audio");
  return { blob: await response.blob(), name };
}
