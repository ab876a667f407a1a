"""The Celery application both sides share: the API sends `musicsep.separate`, workers run it.

Settings that make a job survive a dying worker (DESIGN §7):
- `task_acks_late`: the message is acknowledged when the job ends, not when it starts, so a
  worker killed mid-job leaves it unacknowledged and Redis hands it to another worker;
- `task_reject_on_worker_lost`: a pool child that dies puts its message back at once;
- `worker_prefetch_multiplier=1`: a worker holds only the job it runs, so queued jobs stay in
  Redis where priorities order them and any free worker can take them;
- `visibility_timeout`: how long Redis waits before redelivering an unacknowledged message. It
  must exceed the longest job, or a job still running is handed to a second worker; the price is
  that a killed worker's job waits that long (plus one sweep, a quarter of it at most a minute)
  before it runs again (docs/deploy.md).

Priorities: musicsep's 1 (lowest) … 5 (most urgent) become Celery priorities 4 … 0 on Redis,
where kombu keeps one list per priority step and always reads the lowest step first (0 first).
That is priority between queued jobs only: a running job is never pre-empted.
"""

from __future__ import annotations

from celery import Celery

from musicsep.config import Settings

QUEUE = "musicsep"
TASK = "musicsep.separate"


def celery_priority(priority: int) -> int:
    """musicsep priority 1..5 (5 most urgent) -> kombu-on-Redis priority 4..0 (0 read first)."""
    return 5 - priority


def make_celery(settings: Settings) -> Celery:
    app = Celery("musicsep", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            # kombu sweeps for expired unacknowledged messages every interval x throttle seconds
            # (10 x 10 by default): a quarter of the visibility timeout, capped at a minute, instead.
            "unacked_restore_interval": max(1, min(60, int(settings.visibility_timeout_s / 4))),
            "unacked_restore_throttle": 1,
            "queue_order_strategy": "priority",
            "priority_steps": [0, 1, 2, 3, 4],
            "global_keyprefix": settings.redis_prefix,
        },
    )
    return app
