"""The job store on Redis: the scale-out column of DESIGN §7, same methods as `SqliteStore`.

Every API process and every worker reads and writes the same records, so a job admitted by one
API node can be listed, watched and cancelled through another. Layout under one key prefix:

- `job:<id>`       the job record as JSON (one key per job: read and written whole)
- `jobs`           sorted set id -> seq (listing newest first, `next_seq`)
- `status:<s>`     set of ids per status (`count_by_status`, filtered listing)
- `expiry`         sorted set id -> expires_at (the TTL cleaner)
- `titles`         hash id -> title: the one field a user edits, kept out of the record so that a
                   worker rewriting the record it holds never undoes a rename made meanwhile
- `idem:<key>`     idempotency key -> job id, claimed in the job's own write (WATCH/MULTI), so two
                   nodes cannot both win and a key never names a job that was not written

Multi-key changes go through one MULTI/EXEC pipeline, so a reader never sees a job in two status
sets. The client is redis-py's synchronous one: each call is one round trip on 127.0.0.1 or a LAN
(well under a millisecond), as cheap as the SQLite statements it replaces on the loop thread.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

import redis

from musicsep.service.admission import ServiceUnavailable
from musicsep.service.jobs import Job, JobSpec, JobStatus
from musicsep.service.sqlite_store import DuplicateIdempotencyKey

DEFAULT_PREFIX = "musicsep:"


class StoreUnavailable(ServiceUnavailable):
    """Redis cannot be reached while reading jobs: a 503 with Retry-After, not a 500."""

    def __init__(self) -> None:
        super().__init__("the job store cannot be reached right now; retry shortly", 5)


def reachable(method):
    """Turn Redis being down (connection refused, timed out) into StoreUnavailable."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError):
            raise StoreUnavailable() from None

    return wrapper


def job_to_json(job: Job) -> str:
    """The record as JSON, without the title (kept in `titles`)."""
    record = {
        "id": job.id,
        "spec": job.spec.model_dump(mode="json"),
        "status": job.status.value,
        "seq": job.seq,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "expires_at": job.expires_at,
        "attempts": job.attempts,
        "request_id": job.request_id,
        "filename": job.filename,
        "result": job.result,
        "error": job.error,
        "model_used": job.model_used,
        "fallback_reason": job.fallback_reason,
    }
    return json.dumps(record, separators=(",", ":"))


def job_from_json(text: str | bytes, title: bytes | None = None) -> Job:
    """The record read back, with its title from `titles` (b"" is a job without one)."""
    record: dict[str, Any] = json.loads(text)
    record["spec"] = JobSpec.model_validate(record["spec"])
    record["status"] = JobStatus(record["status"])
    record["title"] = (title.decode() or None) if title is not None else None
    return Job(**record)


class RedisStore:
    """Jobs in Redis. Events live in `RedisEventLog` (Streams), not here."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self._r = client
        self._p = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisStore:
        return cls(redis.Redis.from_url(url), prefix)

    def close(self) -> None:
        self._r.close()

    def _key(self, *parts: str) -> str:
        return self._p + ":".join(parts)

    # --- jobs -----------------------------------------------------------------------------
    def next_seq(self) -> int:
        top = self._r.zrevrange(self._key("jobs"), 0, 0, withscores=True)
        return int(top[0][1]) + 1 if top else 1

    @reachable
    def insert_job(self, job: Job) -> None:
        """Write the job and claim its idempotency key in one transaction (WATCH on the key), so
        that a key never names a job that was not written, and two nodes cannot both claim it."""
        idem = None if job.spec.idempotency_key is None else self._key("idem", job.spec.idempotency_key)
        with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    if idem is not None:
                        pipe.watch(idem)
                        if (existing := pipe.get(idem)) is not None:
                            raise DuplicateIdempotencyKey(existing.decode())
                    pipe.multi()
                    if idem is not None:
                        pipe.set(idem, job.id)
                    pipe.set(self._key("job", job.id), job_to_json(job))
                    pipe.hset(self._key("titles"), job.id, job.title or "")
                    pipe.zadd(self._key("jobs"), {job.id: job.seq})
                    self._index(pipe, job)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue  # another node wrote the key meanwhile: the next turn names its job

    def update_job(self, job: Job) -> None:
        """Rewrite the record when it exists (like SQL UPDATE: a missing row stays missing)."""
        pipe = self._r.pipeline(transaction=True)
        pipe.set(self._key("job", job.id), job_to_json(job), xx=True)
        self._index(pipe, job)
        written, *_ = pipe.execute()
        if not written:
            self._unindex(job.id)

    def update_if(self, job_id: str, change: Callable[[Job], bool]) -> Job | None:
        """Read, change and write one job atomically (WATCH/MULTI), or leave it alone.

        `change` mutates the job and returns True to write it; the changed job is returned, or
        None when the job is missing or `change` declined. Used where two processes may race for
        one transition (a worker taking a job while the API cancels it): exactly one wins.
        """
        key = self._key("job", job_id)
        with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    text = pipe.get(key)
                    if text is None:
                        return None
                    job = job_from_json(text, self._r.hget(self._key("titles"), job_id))
                    if not change(job):
                        return None
                    pipe.multi()
                    pipe.set(key, job_to_json(job))
                    self._index(pipe, job)
                    pipe.execute()
                    return job
                except redis.WatchError:
                    continue

    @reachable
    def rename_job(self, job_id: str, title: str | None) -> bool:
        """Set the job's title (its record untouched); False when there is no such job."""
        with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self._key("job", job_id))
                    if not pipe.exists(self._key("job", job_id)):
                        return False
                    pipe.multi()
                    pipe.hset(self._key("titles"), job_id, title or "")
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    @reachable
    def delete_job(self, job_id: str) -> None:
        """Remove the record, its title, its indexes and its idempotency key (when it names this job)."""
        job = self.get_job(job_id)
        if job is None:
            return
        key = job.spec.idempotency_key
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(self._key("job", job_id))
        pipe.hdel(self._key("titles"), job_id)
        pipe.zrem(self._key("jobs"), job_id)
        pipe.execute()
        self._unindex(job_id)
        if key is not None and self._r.get(self._key("idem", key)) == job_id.encode():
            self._r.delete(self._key("idem", key))

    @reachable
    def unbind_idempotency_key(self, job_id: str) -> None:
        """Free the job's idempotency key when it still names this job (a repeat then creates a new job)."""
        job = self.get_job(job_id)
        key = job.spec.idempotency_key if job is not None else None
        if key is None:
            return
        idem = self._key("idem", key)
        with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(idem)
                    if pipe.get(idem) != job_id.encode():
                        return
                    pipe.multi()
                    pipe.delete(idem)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def _index(self, pipe: Any, job: Job) -> None:
        for status in JobStatus:
            if status is not job.status:
                pipe.srem(self._key("status", status.value), job.id)
        pipe.sadd(self._key("status", job.status.value), job.id)
        if job.expires_at is not None and job.status is not JobStatus.EXPIRED:
            pipe.zadd(self._key("expiry"), {job.id: job.expires_at})
        else:
            pipe.zrem(self._key("expiry"), job.id)

    def _unindex(self, job_id: str) -> None:
        pipe = self._r.pipeline(transaction=True)
        for status in JobStatus:
            pipe.srem(self._key("status", status.value), job_id)
        pipe.zrem(self._key("expiry"), job_id)
        pipe.execute()

    @reachable
    def get_job(self, job_id: str) -> Job | None:
        pipe = self._r.pipeline(transaction=False)
        pipe.get(self._key("job", job_id))
        pipe.hget(self._key("titles"), job_id)
        text, title = pipe.execute()
        return None if text is None else job_from_json(text, title)

    @reachable
    def find_by_idempotency_key(self, key: str) -> str | None:
        value = self._r.get(self._key("idem", key))
        return None if value is None else value.decode()

    @reachable
    def list_jobs(self, statuses: Iterable[JobStatus] | None = None, limit: int = 100) -> list[Job]:
        wanted = list(statuses or [])
        if not wanted:
            ids = [i.decode() for i in self._r.zrevrange(self._key("jobs"), 0, limit - 1)]
        else:
            members = [i.decode() for i in self._r.sunion([self._key("status", s.value) for s in wanted])]
            scores = self._r.zmscore(self._key("jobs"), members) if members else []
            pairs = zip(members, scores, strict=True)
            ranked = sorted(((score, job_id) for job_id, score in pairs if score is not None), reverse=True)
            ids = [job_id for _, job_id in ranked[:limit]]
        if not ids:
            return []
        texts = self._r.mget([self._key("job", i) for i in ids])
        titles = self._r.hmget(self._key("titles"), ids)
        return [job_from_json(text, title) for text, title in zip(texts, titles, strict=True) if text is not None]

    @reachable
    def count_by_status(self) -> dict[str, int]:
        pipe = self._r.pipeline(transaction=False)
        for status in JobStatus:
            pipe.scard(self._key("status", status.value))
        counts = pipe.execute()
        return {status.value: int(n) for status, n in zip(JobStatus, counts, strict=True) if n}

    def expired_before(self, now: float) -> list[str]:
        return [i.decode() for i in self._r.zrangebyscore(self._key("expiry"), "-inf", now)]
