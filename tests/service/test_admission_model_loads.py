"""Model loads take run slots like jobs: queued behind the jobs already
waiting, ahead of later ones, never announced as a job, removable while they wait."""

from __future__ import annotations

import asyncio

import pytest

from musicsep.service.admission import Admission, QueueFull, admitted


def make(slots: int = 1, queue: int = 4):
    started: list[str] = []
    positions: list[dict[str, int]] = []
    return Admission(slots, queue, start=started.append, on_positions=positions.append), started, positions


def test_a_load_waits_its_turn_between_earlier_and_later_jobs():
    admission, started, positions = make()
    admission.submit("a" * 32, 3, 0)  # running
    admission.submit("b" * 32, 3, 1)  # queued
    loads: list[str] = []
    admission.submit_load("load-1", lambda: loads.append("load-1"))
    admission.submit("c" * 32, 3, 2)
    assert loads == [] and admission.depth == 3
    assert admission.position("load-1") == 2 and admission.position("c" * 32) == 3
    assert all("load-1" not in changed for changed in positions)  # no `queued` event for a load
    admission.release("a" * 32)
    assert started == ["a" * 32, "b" * 32] and loads == []
    admission.release("b" * 32)
    assert loads == ["load-1"] and started == ["a" * 32, "b" * 32]
    admission.release("load-1")
    assert started[-1] == "c" * 32


def test_a_waiting_load_that_is_abandoned_leaves_no_trace():
    async def scenario():
        admission, _, _ = make()
        admission.submit("a" * 32, 3, 0)
        waiter = asyncio.create_task(admitted(admission).__aenter__())
        await asyncio.sleep(0)  # one turn of the loop: the task queues its load and awaits its slot
        assert admission.depth == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert admission.depth == 0
        admission.release("a" * 32)
        assert admission.free_slots() == 1

    asyncio.run(scenario())


def test_a_load_is_refused_when_the_slots_and_the_queue_are_full():
    async def scenario():
        admission, _, _ = make(queue=0)
        admission.submit("a" * 32, 3, 0)
        with pytest.raises(QueueFull):
            async with admitted(admission):
                pass
        admission.release("a" * 32)
        async with admitted(admission):
            assert admission.free_slots() == 0
        assert admission.free_slots() == 1

    asyncio.run(scenario())
