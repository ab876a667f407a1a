"""Synchronous client over httpx.

with Client("http://127.0.0.1:8000") as client:
    for event in client.separate("song.mp3", model="htdemucs", stems=["vocals"]):
        print(event)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from musicsep.clients.common import (
    absolute,
    accepted,
    events_path,
    jobs_query,
    same_origin,
    server_url,
    stream_lost,
    submission,
    unfinished_stream,
)
from musicsep.clients.downloads import filename_from, whole_file
from musicsep.clients.errors import ConnectionFailed, ServerError, connection_failed, retry_wait
from musicsep.clients.events import Completed, Event, parse_event
from musicsep.clients.live import LiveBlock, live_path, live_step, stalled
from musicsep.clients.sse import SSEParser
from musicsep.clients.views import Job, ModelCatalog, job_id


@contextmanager
def reaching(url: str) -> Iterator[None]:
    """httpx's transport errors (refused, unknown host, timeout, reset) → ConnectionFailed."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise connection_failed(url, exc, timed_out=True) from exc
    except httpx.TransportError as exc:
        raise connection_failed(url, exc, timed_out=False) from exc


class Client:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_reconnects: int = 20,
    ) -> None:
        self.base_url = server_url(base_url)
        self.max_reconnects = max_reconnects
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        #: Plain calls wait `timeout` for each step; streams and downloads read longer than the
        #: server's 15 s keep-alive, so an idle event stream is not cut.
        self._call_timeout = httpx.Timeout(timeout)
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, read=max(timeout, 60.0)))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _url(self, path: str) -> str:
        return absolute(self.base_url, path)

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            response.read()
            raise ServerError.from_body(response.status_code, response.content, response.headers.get("retry-after"))
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request with a JSON (or empty) answer; error statuses raise ServerError."""
        url = self._url(path)
        with reaching(url):
            return self._check(self._http.request(method, url, timeout=self._call_timeout, **kwargs))

    @staticmethod
    def _body(
        stack: ExitStack, audio: str | Path | None, audio_url: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        """httpx arguments of a submission: a JSON `audio_url` body, or a multipart upload."""
        sent = submission(stack, audio, audio_url, options)
        return {"json": sent.json} if sent.file is None else {"data": sent.fields, "files": {"file": sent.file}}

    # --- jobs -------------------------------------------------------------------------------
    def submit(
        self, audio: str | Path | None = None, *, audio_url: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """POST /api/v1/jobs with a file, or with `audio_url` (the server downloads it);
        returns {job_id, status, position, status_url, events_url, replayed}: `replayed` is true
        when an `idempotency_key` seen before gave back the earlier request's job, not a new one."""
        with ExitStack() as stack:
            response = self._call("POST", "/api/v1/jobs", **self._body(stack, audio, audio_url, options))
        return accepted(response.json(), response.headers)

    def job(self, job: str | Job) -> Job:
        return Job.from_json(self._call("GET", f"/api/v1/jobs/{job_id(job)}").json())

    def jobs(self, status: str | Iterable[str] | None = None, *, limit: int = 100) -> list[Job]:
        """Recent jobs, newest first; `status` keeps those in that status (or any of several)."""
        answer = self._call("GET", "/api/v1/jobs", params=jobs_query(status, limit)).json()
        return [Job.from_json(entry) for entry in answer["jobs"]]

    def delete(self, job: str | Job) -> Job | None:
        """DELETE /api/v1/jobs/{id}: a queued or running job is cancelled (its view comes back,
        the `cancelled` event follows); a finished one is deleted with its files (None when the
        server answers without a body)."""
        response = self._call("DELETE", f"/api/v1/jobs/{job_id(job)}")
        return Job.from_json(response.json()) if response.content else None

    def cancel(self, job: str | Job) -> Job:
        """POST /api/v1/jobs/{id}/cancel: a queued or running job is cancelled (its view comes back,
        the `cancelled` event follows). A finished job is left as it is, stems and all: ServerError
        409 `job_finished`. Unlike `delete`, it never removes anything."""
        return Job.from_json(self._call("POST", f"/api/v1/jobs/{job_id(job)}/cancel").json())

    def rename(self, job: str | Job, title: str | None) -> Job:
        """Set the job's title (what lists show and downloads are named after); None or ""
        gives back the default (the file name without its extension)."""
        return Job.from_json(self._call("PATCH", f"/api/v1/jobs/{job_id(job)}", json={"title": title}).json())

    def models(self) -> ModelCatalog:
        return ModelCatalog.from_json(self._call("GET", "/api/v1/models").json())

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health").json()

    def events(self, job: str, *, last_event_id: int = 0) -> Iterator[Event]:
        """Follow a job (id or events_url) to its terminal event, reconnecting with Last-Event-ID.

        A server that cannot be reached at all raises ConnectionFailed at once; once the stream
        was open, a lost connection is retried up to `max_reconnects` times in a row."""
        url = self._url(events_path(job))
        last, attempts, reached = last_event_id, 0, False
        while True:
            parser, wait_s = SSEParser(), None
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)} if last else {}
            try:
                with self._http.stream("GET", url, headers=headers) as response:
                    reached = True
                    if response.status_code == 204:
                        return
                    self._check(response)
                    for text in response.iter_text():
                        for message in parser.feed(text):
                            event = parse_event(message)
                            last, attempts = event.id, 0
                            yield event
                            if event.terminal:
                                return
            except httpx.TransportError as exc:
                if not reached:
                    raise connection_failed(url, exc, timed_out=isinstance(exc, httpx.TimeoutException)) from exc
            except ServerError as error:
                wait_s = retry_wait(error)
            attempts += 1
            if attempts > self.max_reconnects:
                raise stream_lost(url, attempts, last)
            time.sleep(wait_s if wait_s is not None else (parser.retry_ms or 1000) / 1000)

    def separate(
        self, audio: str | Path | None = None, *, audio_url: str | None = None, **options: Any
    ) -> Iterator[Event]:
        """POST /api/v1/separate (a file, or `audio_url`) and yield its events; leaving the loop
        early cancels the job."""
        parser = SSEParser()
        url = self._url("/api/v1/separate")
        with ExitStack() as stack:
            stack.enter_context(reaching(url))
            body = self._body(stack, audio, audio_url, options)
            response = stack.enter_context(
                self._http.stream("POST", url, headers={"Accept": "text/event-stream"}, **body)
            )
            self._check(response)
            for text in response.iter_text():
                for message in parser.feed(text):
                    event = parse_event(message)
                    yield event
                    if event.terminal:
                        return
            raise ConnectionFailed(url, unfinished_stream(response.headers.get("x-job-id")))

    def wait(self, job: str) -> Event:
        """The job's terminal event."""
        for event in self.events(job):
            if event.terminal:
                return event
        raise ConnectionFailed(self._url(events_path(job)), "the event stream ended without a terminal event")

    def stream_stem(self, job: str | Job, stem: str, *, start: int = 0, max_waits: int = 120) -> Iterator[LiveBlock]:
        """A stem's final samples while the job runs, one segment (65536 frames) at a time, in
        order from segment `start`, until the end of the track (clients/live.py). A cancelled or
        failed job raises ServerError 410 (`job_cancelled` / `job_failed`, the reason in its
        message); `max_waits` answers in a row with nothing new (30 s each) raise ClientError."""
        index, waits = start, 0
        while waits <= max_waits:
            url = self._url(live_path(job_id(job), stem, index))
            with reaching(url):
                response = self._http.get(url)
            step = live_step(response.status_code, response.content, response.headers, index)
            if step is False:
                return
            if step is True:
                waits += 1
                continue
            assert isinstance(step, LiveBlock)
            yield step
            index, waits = index + 1, 0
        raise stalled(job_id(job), stem, index, max_waits)

    # --- files ------------------------------------------------------------------------------
    def download(self, url: str, dest: str | Path) -> Path:
        """Save a stem (or stems.zip) link; `dest` may be an existing folder (the server names
        the file), else it is the file to write."""
        dest = Path(dest)
        url = self._url(url)
        with ExitStack() as stack:
            stack.enter_context(reaching(url))
            http = self._http
            if not same_origin(self.base_url, url):  # a presigned S3 link: no credentials of ours
                http = stack.enter_context(httpx.Client(timeout=self._http.timeout))
            response = stack.enter_context(http.stream("GET", url))
            self._check(response)
            if dest.is_dir():
                dest = dest / filename_from(response.headers.get("content-disposition", ""), url)
            with whole_file(dest) as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
        return dest

    def download_all(self, completed: Completed, folder: str | Path) -> dict[str, Path]:
        """Every stem of a `completed` event into `folder` (created, with its parents, if it
        does not exist), one file per stem, named by the server."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return {name: self.download(info["url"], folder) for name, info in completed.stems.items()}
