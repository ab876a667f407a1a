// Follows a job's event stream with EventSource, across dropped connections.
//
// EventSource reconnects by itself and sends `Last-Event-ID`, so the server replays only what
// was missed. When the browser gives up (readyState CLOSED: an HTTP error, the server down),
// a fresh EventSource cannot send that header and the server replays the log from the start;
// either way every event id at or below the last one handled is skipped, so nothing is shown
// twice.

export const EVENT_TYPES = ["queued", "started", "progress", "analysis", "stem", "completed", "failed", "cancelled"];
export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

const MAX_BACKOFF_MS = 15000;

/**
 * `onEvent(type, data, id)` for each new event; `onConnection(state, reconnects)` with state
 * "live" | "reconnecting" | "closed"; `onGiveUp()` when the browser closed the stream for good,
 * returning true to stop (the job is over or gone) or false to open a fresh stream.
 */
export function followJob(url, { onEvent, onConnection, onGiveUp }) {
  let source = null;
  let lastId = 0;
  let reconnects = 0;
  let failures = 0;
  let stopped = false;
  let timer = null;

  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    if (source) source.close();
    onConnection("closed", reconnects);
  };

  const handle = (type) => (message) => {
    const id = Number(message.lastEventId) || 0;
    if (id && id <= lastId) return;
    if (id) lastId = id;
    failures = 0;
    onEvent(type, JSON.parse(message.data), id);
    if (TERMINAL.has(type)) stop();
  };

  const open = () => {
    source = new EventSource(url);
    for (const type of EVENT_TYPES) source.addEventListener(type, handle(type));
    source.onopen = () => onConnection("live", reconnects);
    source.onerror = async () => {
      if (stopped) return;
      reconnects += 1;
      onConnection("reconnecting", reconnects);
      if (source.readyState !== EventSource.CLOSED) return; // the browser retries on its own
      source.close();
      if (await onGiveUp()) {
        stop();
        return;
      }
      failures += 1;
      timer = setTimeout(() => { if (!stopped) open(); }, Math.min(500 * 2 ** failures, MAX_BACKOFF_MS));
    };
  };

  open();
  return { stop, get lastId() { return lastId; } };
}
