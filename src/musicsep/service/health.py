"""What `GET /health` reports, decided by the service, which knows what it depends on.

The embedded mode depends on nothing outside its process (SQLite and the data dir are local):
it is up whenever it answers. The scale-out mode cannot take or follow a job without Redis, so a
node whose Redis is unreachable says so (503 with `dependencies: {"redis": false}`), which lets a
load balancer route around it, instead of failing the health check with a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Health:
    #: False when a dependency the node needs to take jobs is down.
    ok: bool
    slots: int
    #: Unknown (None) when the store that counts them cannot be reached.
    queue_depth: int | None
    running: int | None
    #: Each outside dependency and whether it answered just now; empty in the embedded mode.
    dependencies: dict[str, bool] = field(default_factory=dict)
