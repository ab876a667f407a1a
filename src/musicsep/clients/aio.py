"""Asynchronous client over aiohttp, the same calls as the sync one.

async with AsyncClient("http://127.0.0.1:8000") as client:
    async for event in client.separate("song.mp3", stems=["vocals"]):
        print(event)
"""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import AsyncExitStack, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp

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
    """aiohttp's errors (refused, unknown host, reset, a broken body) and timeouts → ConnectionFailed."""
    try:
        yield
    except asyncio.TimeoutError as exc:  # aiohttp's own timeouts derive from it too
        raise connection_failed(url, exc, timed_out=True) from exc
    except aiohttp.ClientError as exc:
        raise connection_failed(url, exc, timed_out=False) from exc


class AsyncClient:
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
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        #: Plain calls wait `timeout` to connect and between reads. Streams read longer than the
        #: server's 15 s keep-alive, with no total cap: they last as long as jobs.
        self._call_timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=max(timeout, 60.0))
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop (never at construction).
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _url(self, path: str) -> str:
        return absolute(self.base_url, path)

    @staticmethod
    async def _check(response: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
        if response.status >= 400:
            body = await response.read()
            raise ServerError.from_body(response.status, body, response.headers.get("retry-after"))
        return response

    async def _exchange(self, method: str, path: str, **kwargs: Any) -> tuple[Any, Mapping[str, str]]:
        """One request; its JSON answer (None for an empty one) and headers. Error statuses raise
        ServerError."""
        url = self._url(path)
        with reaching(url):
            async with self.session.request(method, url, timeout=self._call_timeout, **kwargs) as response:
                await self._check(response)
                body = await response.read()
        return (json.loads(body) if body else None), response.headers

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._exchange(method, path, **kwargs))[0]

    @staticmethod
    def _body(
        stack: ExitStack, audio: str | Path | None, audio_url: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        """aiohttp arguments of a submission: a JSON `audio_url` body, or a multipart upload."""
        sent = submission(stack, audio, audio_url, options)
        if sent.file is None:
            return {"json": sent.json}
        form = aiohttp.FormData()
        for name, value in sent.fields.items():
            form.add_field(name, value)
        form.add_field("file", sent.file[1], filename=sent.file[0], content_type="application/octet-stream")
        return {"data": form}

    # --- jobs -------------------------------------------------------------------------------
    async def submit(
        self, audio: str | Path | None = None, *, audio_url: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """POST /api/v1/jobs with a file, or with `audio_url` (the server downloads it);
        returns {job_id, status, position, status_url, events_url, replayed}: `replayed` is true
        when an `idempotency_key` seen before gave back the earlier request's job, not a new one."""
        with ExitStack() as stack:
            body = self._body(stack, audio, audio_url, options)
            answer, headers = await self._exchange("POST", "/api/v1/jobs", **body)
        return accepted(answer, headers)

    async def job(self, job: str | Job) -> Job:
        return Job.from_json(await self._call("GET", f"/api/v1/jobs/{job_id(job)}"))

    async def jobs(self, status: str | Iterable[str] | None = None, *, limit: int = 100) -> list[Job]:
        """Recent jobs, newest first; `status` keeps those in that status (or any of several)."""
        answer = await self._call("GET", "/api/v1/jobs", params=jobs_query(status, limit))
        return [Job.from_json(entry) for entry in answer["jobs"]]

    async def delete(self, job: str | Job) -> Job | None:
        """DELETE /api/v1/jobs/{id}: a queued or running job is cancelled (its view comes back,
        the `cancelled` event follows); a finished one is deleted with its files (None when the
        server answers without a body)."""
        answer = await self._call("DELETE", f"/api/v1/jobs/{job_id(job)}")
        return Job.from_json(answer) if answer is not None else None

    async def cancel(self, job: str | Job) -> Job:
        """POST /api/v1/jobs/{id}/cancel: a queued or running job is cancelled (its view comes back,
        the `cancelled` event follows). A finished job is left as it is, stems and all: ServerError
        409 `job_finished`. Unlike `delete`, it never removes anything."""
        return Job.from_json(await self._call("POST", f"/api/v1/jobs/{job_id(job)}/cancel"))

    async def rename(self, job: str | Job, title: str | None) -> Job:
        """Set the job's title (what lists show and downloads are named after); None or ""
        gives back the default (the file name without its extension)."""
        return Job.from_json(await self._call("PATCH", f"/api/v1/jobs/{job_id(job)}", json={"title": title}))

    async def models(self) -> ModelCatalog:
        return ModelCatalog.from_json(await self._call("GET", "/api/v1/models"))

    async def health(self) -> dict[str, Any]:
        return await self._call("GET", "/health")

    async def _read(self, response: aiohttp.ClientResponse, parser: SSEParser) -> AsyncIterator[Event]:
        decoder = codecs.getincrementaldecoder("utf-8")()
        async for chunk in response.content.iter_any():
            for message in parser.feed(decoder.decode(chunk)):
                yield parse_event(message)

    async def events(self, job: str, *, last_event_id: int = 0) -> AsyncIterator[Event]:
        """Follow a job (id or events_url) to its terminal event, reconnecting with Last-Event-ID.

        A server that cannot be reached at all raises ConnectionFailed at once; once the stream
        was open, a lost connection is retried up to `max_reconnects` times in a row."""
        url = self._url(events_path(job))
        last, attempts, reached = last_event_id, 0, False
        while True:
            parser, wait_s = SSEParser(), None
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": str(last)} if last else {})}
            try:
                async with self.session.get(url, headers=headers) as response:
                    reached = True
                    if response.status == 204:
                        return
                    await self._check(response)
                    async for event in self._read(response, parser):
                        last, attempts = event.id, 0
                        yield event
                        if event.terminal:
                            return
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if not reached:
                    raise connection_failed(url, exc, timed_out=isinstance(exc, asyncio.TimeoutError)) from exc
            except ServerError as error:
                wait_s = retry_wait(error)
            attempts += 1
            if attempts > self.max_reconnects:
                raise stream_lost(url, attempts, last)
            await asyncio.sleep(wait_s if wait_s is not None else (parser.retry_ms or 1000) / 1000)

    async def separate(
        self, audio: str | Path | None = None, *, audio_url: str | None = None, **options: Any
    ) -> AsyncIterator[Event]:
        """POST /api/v1/separate (a file, or `audio_url`) and yield its events; leaving the loop
        early cancels the job."""
        url = self._url("/api/v1/separate")
        with reaching(url), ExitStack() as stack:
            body = self._body(stack, audio, audio_url, options)
            async with self.session.post(url, headers={"Accept": "text/event-stream"}, **body) as response:
                await self._check(response)
                async for event in self._read(response, SSEParser()):
                    yield event
                    if event.terminal:
                        return
                raise ConnectionFailed(url, unfinished_stream(response.headers.get("x-job-id")))

    async def wait(self, job: str) -> Event:
        """The job's terminal event."""
        async for event in self.events(job):
            if event.terminal:
                return event
        raise ConnectionFailed(self._url(events_path(job)), "the event stream ended without a terminal event")

    async def stream_stem(
        self, job: str | Job, stem: str, *, start: int = 0, max_waits: int = 120
    ) -> AsyncIterator[LiveBlock]:
        """A stem's final samples while the job runs, as `Client.stream_stem` (clients/live.py)."""
        index, waits = start, 0
        while waits <= max_waits:
            url = self._url(live_path(job_id(job), stem, index))
            with reaching(url):
                async with self.session.get(url) as response:
                    body = await response.read()
            step = live_step(response.status, body, response.headers, index)
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
    async def download(self, url: str, dest: str | Path) -> Path:
        """Save a stem (or stems.zip) link; `dest` may be an existing folder (the server names
        the file), else it is the file to write."""
        dest = Path(dest)
        url = self._url(url)
        with reaching(url):
            async with AsyncExitStack() as stack:
                session = self.session
                if not same_origin(self.base_url, url):  # a presigned S3 link: no credentials of ours
                    session = await stack.enter_async_context(aiohttp.ClientSession(timeout=self._timeout))
                response = await stack.enter_async_context(session.get(url))
                await self._check(response)
                if dest.is_dir():
                    dest = dest / filename_from(response.headers.get("content-disposition", ""), url)
                with whole_file(dest) as out:
                    async for chunk in response.content.iter_chunked(1 << 20):
                        out.write(chunk)
        return dest

    async def download_all(self, completed: Completed, folder: str | Path) -> dict[str, Path]:
        """Every stem of a `completed` event into `folder` (created, with its parents, if it
        does not exist), one file per stem, named by the server."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return {name: await self.download(info["url"], folder) for name, info in completed.stems.items()}
