"""Asynchronous client over aiohttp, the same calls as the sync one.

async with AsyncClient("http://127.0.0.1:8000") as client:
    async for event in client.separate("song.mp3", stems=["vocals"]):
        print(event)
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

import aiohttp

from musicsep.clients.common import absolute, events_path, filename_from, same_origin, submission
from musicsep.clients.errors import ServerError, retry_wait
from musicsep.clients.events import Completed, Event, parse_event
from musicsep.clients.sse import SSEParser


class AsyncClient:
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
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # sock_read longer than the server's 15 s keep-alive; no total cap: streams last as long as jobs.
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

    async def _json(self, method: str, path: str) -> dict[str, Any]:
        async with self.session.request(method, self._url(path)) as response:
            await self._check(response)
            return await response.json()

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
        """POST /api/v1/jobs with a file, or with `audio_url` (the server downloads it)."""
        with ExitStack() as stack:
            body = self._body(stack, audio, audio_url, options)
            async with self.session.post(self._url("/api/v1/jobs"), **body) as response:
                await self._check(response)
                return await response.json()

    async def job(self, job_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/api/v1/jobs/{job_id}")

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return await self._json("DELETE", f"/api/v1/jobs/{job_id}")

    async def health(self) -> dict[str, Any]:
        return await self._json("GET", "/health")

    async def _read(self, response: aiohttp.ClientResponse, parser: SSEParser) -> AsyncIterator[Event]:
        decoder = codecs.getincrementaldecoder("utf-8")()
        async for chunk in response.content.iter_any():
            for message in parser.feed(decoder.decode(chunk)):
                yield parse_event(message)

    async def events(self, job: str, *, last_event_id: int = 0) -> AsyncIterator[Event]:
        """Follow a job (id or events_url) to its terminal event, reconnecting with Last-Event-ID."""
        url = self._url(events_path(job))
        last, attempts = last_event_id, 0
        while True:
            parser, wait_s = SSEParser(), None
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": str(last)} if last else {})}
            try:
                async with self.session.get(url, headers=headers) as response:
                    if response.status == 204:
                        return
                    await self._check(response)
                    async for event in self._read(response, parser):
                        last = event.id
                        yield event
                        if event.terminal:
                            return
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError):
                pass
            except ServerError as error:
                wait_s = retry_wait(error)
            attempts += 1
            if attempts > self.max_reconnects:
                raise ConnectionError(f"lost the event stream {attempts} times; last event id {last}")
            await asyncio.sleep(wait_s if wait_s is not None else (parser.retry_ms or 1000) / 1000)

    async def separate(
        self, audio: str | Path | None = None, *, audio_url: str | None = None, **options: Any
    ) -> AsyncIterator[Event]:
        """POST /api/v1/separate (a file, or `audio_url`) and yield its events; leaving the loop
        early cancels the job."""
        with ExitStack() as stack:
            body = self._body(stack, audio, audio_url, options)
            async with self.session.post(
                self._url("/api/v1/separate"), headers={"Accept": "text/event-stream"}, **body
            ) as response:
                await self._check(response)
                async for event in self._read(response, SSEParser()):
                    yield event
                    if event.terminal:
                        return

    async def wait(self, job: str) -> Event:
        async for event in self.events(job):
            if event.terminal:
                return event
        raise ConnectionError("the event stream ended without a terminal event")

    # --- files ------------------------------------------------------------------------------
    async def download(self, url: str, dest: str | Path) -> Path:
        dest = Path(dest)
        url = self._url(url)
        async with AsyncExitStack() as stack:
            session = self.session
            if not same_origin(self.base_url, url):  # a presigned S3 link: no credentials of ours
                session = await stack.enter_async_context(aiohttp.ClientSession(timeout=self._timeout))
            response = await stack.enter_async_context(session.get(url))
            await self._check(response)
            if dest.is_dir():
                dest = dest / filename_from(response.headers.get("content-disposition", ""), url)
            with dest.open("wb") as out:
                async for chunk in response.content.iter_chunked(1 << 20):
                    out.write(chunk)
        return dest

    async def download_all(self, completed: Completed, folder: str | Path) -> dict[str, Path]:
        return {name: await self.download(info["url"], folder) for name, info in completed.stems.items()}
