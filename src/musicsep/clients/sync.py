"""Synchronous client over httpx.

with Client("http://127.0.0.1:8000") as client:
    for event in client.separate("song.mp3", model="htdemucs", stems=["vocals"]):
        print(event)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from musicsep.clients.common import absolute, events_path, filename_from, same_origin, submission
from musicsep.clients.errors import ServerError, retry_wait
from musicsep.clients.events import Completed, Event, parse_event
from musicsep.clients.sse import SSEParser


class Client:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_reconnects: int = 20,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_reconnects = max_reconnects
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Reads wait longer than the server's 15 s keep-alive, so an idle stream is not cut.
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
        returns {job_id, status, position, status_url, events_url}."""
        with ExitStack() as stack:
            body = self._body(stack, audio, audio_url, options)
            response = self._http.post(self._url("/api/v1/jobs"), **body)
        return self._check(response).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self._check(self._http.get(self._url(f"/api/v1/jobs/{job_id}"))).json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._check(self._http.delete(self._url(f"/api/v1/jobs/{job_id}"))).json()

    def health(self) -> dict[str, Any]:
        return self._check(self._http.get(self._url("/health"))).json()

    def events(self, job: str, *, last_event_id: int = 0) -> Iterator[Event]:
        """Follow a job (id or events_url) to its terminal event, reconnecting with Last-Event-ID."""
        url = self._url(events_path(job))
        last, attempts = last_event_id, 0
        while True:
            parser, wait_s = SSEParser(), None
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)} if last else {}
            try:
                with self._http.stream("GET", url, headers=headers) as response:
                    if response.status_code == 204:
                        return
                    self._check(response)
                    for text in response.iter_text():
                        for message in parser.feed(text):
                            event = parse_event(message)
                            last = event.id
                            yield event
                            if event.terminal:
                                return
            except (httpx.TransportError, httpx.RemoteProtocolError):
                pass
            except ServerError as error:
                wait_s = retry_wait(error)
            attempts += 1
            if attempts > self.max_reconnects:
                raise ConnectionError(f"lost the event stream {attempts} times; last event id {last}")
            time.sleep(wait_s if wait_s is not None else (parser.retry_ms or 1000) / 1000)

    def separate(
        self, audio: str | Path | None = None, *, audio_url: str | None = None, **options: Any
    ) -> Iterator[Event]:
        """POST /api/v1/separate (a file, or `audio_url`) and yield its events; leaving the loop
        early cancels the job."""
        parser = SSEParser()
        with ExitStack() as stack:
            body = self._body(stack, audio, audio_url, options)
            response = stack.enter_context(
                self._http.stream(
                    "POST", self._url("/api/v1/separate"), headers={"Accept": "text/event-stream"}, **body
                )
            )
            self._check(response)
            for text in response.iter_text():
                for message in parser.feed(text):
                    event = parse_event(message)
                    yield event
                    if event.terminal:
                        return

    def wait(self, job: str) -> Event:
        """The job's terminal event."""
        for event in self.events(job):
            if event.terminal:
                return event
        raise ConnectionError("the event stream ended without a terminal event")

    # --- files ------------------------------------------------------------------------------
    def download(self, url: str, dest: str | Path) -> Path:
        """Save a stem (or stems.zip) link; `dest` may be a folder (the server names the file)."""
        dest = Path(dest)
        url = self._url(url)
        with ExitStack() as stack:
            http = self._http
            if not same_origin(self.base_url, url):  # a presigned S3 link: no credentials of ours
                http = stack.enter_context(httpx.Client(timeout=self._http.timeout))
            response = stack.enter_context(http.stream("GET", url))
            self._check(response)
            if dest.is_dir():
                dest = dest / filename_from(response.headers.get("content-disposition", ""), url)
            with dest.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
        return dest

    def download_all(self, completed: Completed, folder: str | Path) -> dict[str, Path]:
        """Every stem of a `completed` event into `folder`."""
        return {name: self.download(info["url"], folder) for name, info in completed.stems.items()}
