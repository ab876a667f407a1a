"""Live stems on the embedded server (issue 16): segments read while the tiny model runs equal the
final float32 stems exactly, the frontier is announced in progress events before the job ends,
and every answer of the contract (404, 416, 409) is what docs/server.md says."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import soundfile as sf

from conftest import synth_music
from server_harness import base_settings, start_server, stream_events

SEGMENT = 65536


def _submit(server, song, **fields: str) -> dict:
    with song.open("rb") as handle:
        reply = httpx.post(
            f"{server.url}/api/v1/jobs",
            files={"file": ("song.wav", handle)},
            data={"analyze": "false", **fields},
            timeout=60,
        )
    assert reply.status_code == 202, reply.text
    return reply.json()


def _segment(server, job_id: str, stem: str, index: int, wait: float = 30) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v1/jobs/{job_id}/stems/{stem}/live/{index}?wait={wait}", timeout=wait + 30)


def _next_segment(server, job_id: str, stem: str, index: int) -> httpx.Response:
    """The segment once it is ready: a 425 says "ask again" (the protocol, not a retry of a
    failure); bounded to 8 waits of 30 s, far above the job's time on a loaded machine."""
    for _ in range(8):
        reply = _segment(server, job_id, stem, index)
        if reply.status_code != 425:
            return reply
    raise AssertionError(f"segment {index} of {stem} was not ready within 8 waits")


def _samples(reply: httpx.Response) -> np.ndarray:
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "audio/wav"
    info = sf.info(io.BytesIO(reply.content))
    assert info.subtype == "FLOAT", info
    data, _ = sf.read(io.BytesIO(reply.content), dtype="float32", always_2d=True)
    return data


@pytest.fixture(scope="module")
def running_song(tmp_path_factory, tiny_model_repo):
    """A 4.5 s song (3 full segments and a short one) on a real server, its segments read while
    it runs: each request waits for its segment, so they are asked for before they exist."""
    folder = tmp_path_factory.mktemp("live")
    clip = folder / "song.wav"
    sf.write(str(clip), synth_music(4.5, seed=3).T, 44100)
    server = start_server(base_settings(folder / "data", tiny_model_repo))
    try:
        accepted = _submit(server, clip, format="float32", clip="none")
        job_id = accepted["job_id"]
        live = {stem: [] for stem in ("vocals", "drums")}
        index = 0
        while index < 10:  # bounded: the track has 4 segments
            replies = {stem: _next_segment(server, job_id, stem, index) for stem in live}
            if any(reply.status_code == 416 for reply in replies.values()):
                break
            for stem, reply in replies.items():
                live[stem].append((reply.headers, _samples(reply)))
            index += 1
        _, events = stream_events(server.url + accepted["events_url"])
        view = httpx.get(server.url + accepted["status_url"], timeout=10).json()
        yield server, job_id, live, events, view
    finally:
        server.stop()


def test_live_segments_equal_the_final_float32_stems_exactly(running_song):
    server, _, live, events, view = running_song
    assert events[-1][1] == "completed", events[-1]
    for stem, segments in live.items():
        assert len(segments) == 4
        assert [len(samples) for _, samples in segments] == [SEGMENT] * 3 + [int(4.5 * 44100) - 3 * SEGMENT]
        assert all(headers["x-musicsep-live-level"] == "final" for headers, _ in segments)
        assert all(headers["cache-control"] == "no-store" for headers, _ in segments)
        final = sf.read(
            io.BytesIO(httpx.get(server.url + view["stems"][stem]["url"], timeout=30).content),
            dtype="float32",
            always_2d=True,
        )[0]
        joined = np.concatenate([samples for _, samples in segments])
        assert joined.shape == final.shape
        assert np.array_equal(joined, final), f"{stem}: live samples differ from the final file"


def test_the_frontier_is_announced_in_progress_events_before_the_job_ends(running_song):
    _, _, _, events, _ = running_song
    readies = [
        (event_id, data["ready_frames"], data["ready_s"])
        for event_id, kind, data in events
        if kind == "progress" and "ready_frames" in data
    ]
    frames = [ready for _, ready, _ in readies]
    assert frames == sorted(frames), "the frontier never goes back"
    for step in (SEGMENT, 2 * SEGMENT, 3 * SEGMENT, int(4.5 * 44100)):
        assert step in frames, f"a frontier of {step} frames has its own event"
    first_stem_event = min(event_id for event_id, kind, _ in events if kind == "stem")
    announced = [event_id for event_id, ready, _ in readies if ready >= SEGMENT]
    assert announced and announced[0] < first_stem_event, "segment 0 was readable before the stems were stored"
    assert any(abs(seconds - ready / 44100) < 1e-3 for _, ready, seconds in readies if ready)


def test_live_info_says_where_the_stems_stand(running_song):
    server, job_id, _, _, _ = running_song
    info = httpx.get(f"{server.url}/api/v1/jobs/{job_id}/live", timeout=10).json()
    total = int(4.5 * 44100)
    assert info == {
        "samplerate": 44100,
        "channels": 2,
        "segment_frames": SEGMENT,
        "ready_frames": total,
        "ready_s": round(total / 44100, 4),
        "segments_ready": 4,
        "total_frames": total,
        "done": True,
        "state": "completed",
        "stems": ["drums", "bass", "other", "vocals"],
        "level": "final",
    }


def test_past_the_end_unknown_stems_and_jobs_are_refused_in_the_envelope(running_song):
    server, job_id, _, _, _ = running_song
    past = _segment(server, job_id, "vocals", 4, wait=0)
    assert past.status_code == 416 and past.json()["error"]["code"] == "past_end"
    assert str(int(4.5 * 44100)) in past.json()["error"]["message"]
    unknown = _segment(server, job_id, "guitar", 0, wait=0)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "stem_not_found"
    sneaky = _segment(server, job_id, "..%2F..%2Fstate.json", 0, wait=0)
    assert sneaky.status_code == 404
    missing = httpx.get(f"{server.url}/api/v1/jobs/{'0' * 32}/live", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
    negative = _segment(server, job_id, "vocals", -1, wait=0)
    assert negative.status_code == 422


def test_live_can_be_turned_off(tmp_path, tiny_model_repo, make_clip):
    server = start_server(base_settings(tmp_path / "data", tiny_model_repo, live=False))
    try:
        accepted = _submit(server, make_clip(1.0))
        _, events = stream_events(server.url + accepted["events_url"])
        assert events[-1][1] == "completed"
        job_id = accepted["job_id"]
        for url in (f"/api/v1/jobs/{job_id}/live", f"/api/v1/jobs/{job_id}/stems/vocals/live/0?wait=0"):
            reply = httpx.get(server.url + url, timeout=10)
            assert reply.status_code == 409 and reply.json()["error"]["code"] == "live_disabled"
        assert not (tmp_path / "data" / "jobs" / job_id / "live").exists()
    finally:
        server.stop()


def _live_and_final(server, song, stem: str, **fields: str) -> tuple[list[httpx.Response], np.ndarray]:
    accepted = _submit(server, song, format="float32", **fields)
    replies = []
    for index in range(10):  # bounded: a 2 s song has 2 segments
        reply = _next_segment(server, accepted["job_id"], stem, index)
        if reply.status_code == 416:
            break
        replies.append(reply)
    _, events = stream_events(server.url + accepted["events_url"])
    assert events[-1][1] == "completed"
    view = httpx.get(server.url + accepted["status_url"], timeout=10).json()
    final = sf.read(
        io.BytesIO(httpx.get(server.url + view["stems"][stem]["url"], timeout=30).content),
        dtype="float32",
        always_2d=True,
    )[0]
    return replies, final


def test_clamped_live_samples_equal_a_clamped_file_and_rescaled_ones_differ_by_the_factor(tmp_path, tiny_model_repo):
    song = tmp_path / "loud.wav"
    sf.write(str(song), np.clip(4.0 * synth_music(2.0, seed=11), -1, 1).T, 44100)
    server = start_server(base_settings(tmp_path / "data", tiny_model_repo))
    try:
        replies, final = _live_and_final(server, song, "drums", clip="clamp")
        assert {reply.headers["x-musicsep-live-level"] for reply in replies} == {"clamped"}
        assert np.array_equal(np.concatenate([_samples(reply) for reply in replies]), final)

        replies, final = _live_and_final(server, song, "drums", clip="rescale")
        assert {reply.headers["x-musicsep-live-level"] for reply in replies} == {"unscaled"}
        live = np.concatenate([_samples(reply) for reply in replies])
        factor = max(1.01 * float(np.abs(live).max()), 1.0)
        np.testing.assert_allclose(final, live / np.float32(factor), rtol=0, atol=1e-7)
    finally:
        server.stop()
