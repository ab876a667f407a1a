"""Admission decides at once and in one place: slots, a bounded queue, priorities, positions."""

from __future__ import annotations

import pytest

from musicsep.service.admission import Admission, NoFreeSlot, QueueFull


class Recorder:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.positions: list[dict[str, int]] = []


def make(slots: int = 1, queue: int = 2) -> tuple[Admission, Recorder]:
    seen = Recorder()
    return Admission(slots, queue, start=seen.started.append, on_positions=seen.positions.append), seen


def test_capacity_one_queue_two_refuses_the_fourth_job():
    admission, seen = make()
    for seq, job in enumerate(["a", "b", "c"]):
        admission.check()
        admission.submit(job, 3, seq)
    assert seen.started == ["a"]
    assert admission.depth == 2
    with pytest.raises(QueueFull) as refused:
        admission.check()
    assert refused.value.retry_after_s > 0
    with pytest.raises(NoFreeSlot):
        admission.check(wait=False)


def test_positions_are_reported_and_move_when_a_slot_frees():
    admission, seen = make(queue=5)
    for seq, job in enumerate(["a", "b", "c", "d"]):
        admission.submit(job, 3, seq)
    assert seen.positions == [{"b": 1}, {"c": 2}, {"d": 3}]
    admission.release("a")
    assert seen.started == ["a", "b"]
    assert seen.positions[-1] == {"c": 1, "d": 2}
    assert admission.remove("c")
    assert seen.positions[-1] == {"d": 1}


def test_higher_priority_runs_first_then_oldest():
    admission, seen = make(queue=5)
    admission.submit("running", 3, 0)
    admission.submit("low", 1, 1)
    admission.submit("urgent_late", 5, 3)
    admission.submit("normal", 3, 2)
    admission.submit("urgent_early", 5, 2)
    for job in ["running", "urgent_early", "urgent_late", "normal"]:
        admission.release(job)
    assert seen.started == ["running", "urgent_early", "urgent_late", "normal", "low"]


def test_wait_false_starts_when_a_slot_is_free():
    admission, seen = make(slots=2)
    admission.check(wait=False)
    assert admission.submit("a", 3, 0) == 0
    assert seen.started == ["a"]
    admission.check(wait=False)
