"""The infer-request pool every OpenVINO engine shares (MDX-Net and RoFormer lanes, HTDemucs jobs).

The compiled model here is a stand-in, not OpenVINO: the property under test is the pool's own
(which calls may overlap), and OpenVINO's deadlock cannot be provoked on demand. The stand-in
keeps the real contract: `create_infer_request()`, `request.infer(inputs)` returning a mapping
by output port, `outputs`.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from musicsep.model.runtime.openvino_session import RequestPool

#: How long a new request's first inference waits for another first inference to come in beside
#: it. With the pool serialising first uses none can, so the test spends this once per request;
#: without that, the second lane's call arrives within milliseconds.
OVERLAP_WINDOW_S = 0.5


class WatchedModel:
    """Requests that record whether two first inferences were inside `infer` together: a first
    call waits (bounded) for another first call to come in, the window in which an overlap shows."""

    outputs = ("out",)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.another_first = threading.Event()
        self.firsts_inside = 0
        self.overlapped_first_uses = 0
        self.created = 0

    def create_infer_request(self):
        with self.lock:
            self.created += 1
        return WatchedRequest(self)


class WatchedRequest:
    def __init__(self, model: WatchedModel) -> None:
        self.model, self.calls = model, 0

    def infer(self, inputs):
        model = self.model
        self.calls += 1
        if self.calls == 1:
            with model.lock:
                model.firsts_inside += 1
                overlapping = model.firsts_inside > 1
            if overlapping:
                model.another_first.set()
            if overlapping or model.another_first.wait(OVERLAP_WINDOW_S):
                with model.lock:
                    model.overlapped_first_uses += 1
            with model.lock:
                model.firsts_inside -= 1
        values = list(inputs.values()) if isinstance(inputs, dict) else inputs
        return {"out": np.asarray(values[0]) * 2}


def test_a_new_requests_first_inference_runs_alone():
    """Two fresh requests of a two-stream OpenVINO model inferring at once left a separation idle
    for good (both threads blocked writing their first input; HTDemucs with two streams on a
    3-minute track, 3 runs of 4). The pool runs each new request's first inference alone; warmed requests are
    reused and answer every call."""
    model = WatchedModel()
    pool = RequestPool(model)
    x = np.arange(4, dtype=np.float32)
    with ThreadPoolExecutor(2) as lanes:
        outs = list(lanes.map(lambda _: pool.infer([x]), range(2)))
        outs += list(lanes.map(lambda _: pool.infer({"x": x}), range(4)))
    assert model.overlapped_first_uses == 0
    assert 1 <= model.created <= 2  # one request per call in flight, reused after
    assert all(np.array_equal(out[0], 2 * x) for out in outs)
