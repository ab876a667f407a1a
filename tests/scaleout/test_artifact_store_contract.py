"""One contract for every artifact store: local files with signed API links, and an S3 bucket
with presigned links (moto's standalone S3 server on 127.0.0.1, conftest).

Each store is opened twice, as an API node and as a worker: on the local store both share one
data dir (the embedded mode, or scale-out on a shared disk); on S3 they have separate folders
and share only the bucket, as machines of a cluster do. What the contract pins: an input moves
from the API to the worker, stems stored by the worker are listed, linked, downloadable, opened
and zipped by the API, a stem gone is a KeyError before any zip byte, previews and peaks are
signed API links that lead to their bytes, the stems can be had as local files for a mix, and
`remove` (expiry) leaves nothing to fetch.
"""

from __future__ import annotations

import io
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from musicsep.service.artifacts import JobFolders, LocalArtifactStore, StemDownload, iter_zip
from musicsep.service.interfaces import ArtifactStore
from musicsep.service.jobs import Job, JobSpec, JobStatus, new_job_id
from musicsep.service.links import Links
from musicsep.service.signing import Signer

SIGNER = Signer(b"s" * 32)
LINKS = Links(None)
STEMS = {"vocals": b"RIFF-vocals" * 50, "drums": b"RIFF-drums" * 70}


@dataclass
class Nodes:
    api: ArtifactStore
    worker: ArtifactStore
    #: The bytes a stem link or download leads to (the API route's file, or the bucket's answer).
    fetch: Callable[[ArtifactStore, Job, str, str], bytes]


def _fetch_local(store: ArtifactStore, job: Job, name: str, url: str) -> bytes:
    """A local link is the API's own route: its signature must verify, and it serves this file."""
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == f"/api/v1/jobs/{job.id}/stems/{name}"
    assert SIGNER.verify("stem", job.id, name, query["expires"][0], query["sig"][0])
    path = store.stem_download(job, name).path
    assert path is not None
    return path.read_bytes()


def _fetch_s3(store: ArtifactStore, job: Job, name: str, url: str) -> bytes:
    reply = httpx.get(url, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.content


@pytest.fixture(params=["local", "s3"])
def nodes(request, tmp_path) -> Iterator[Nodes]:
    if request.param == "local":
        folders = JobFolders(tmp_path / "data")
        yield Nodes(
            LocalArtifactStore(folders, SIGNER, LINKS), LocalArtifactStore(folders, SIGNER, LINKS), _fetch_local
        )
        return
    pytest.importorskip("boto3", reason="the `scaleout` extra (boto3) is not installed")
    import boto3

    from musicsep.scaleout.s3_artifacts import S3ArtifactStore
    from musicsep.scaleout.s3_store import S3Bucket

    endpoint = request.getfixturevalue("s3_endpoint")
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    name = f"musicsep-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)

    def store(node: str) -> ArtifactStore:
        return S3ArtifactStore(
            JobFolders(tmp_path / node),
            S3Bucket(name, client=client, prefix="c/"),
            url_ttl_s=3600,
            signer=SIGNER,
            links=LINKS,
        )

    yield Nodes(store("api"), store("worker"), _fetch_s3)


def uploaded(nodes: Nodes, tmp_path: Path, data: bytes = b"RIFF-the-song") -> str:
    """A job whose upload the API node took."""
    job_id = new_job_id()
    upload = tmp_path / f"upload-{job_id}"
    upload.write_bytes(data)
    nodes.api.accept_input(job_id, upload)
    assert not upload.exists(), "the upload was copied, not moved"
    return job_id


def completed(nodes: Nodes, tmp_path: Path) -> Job:
    """A job the worker ran: its stems written in the worker's folders, stored, the folder released."""
    job_id = uploaded(nodes, tmp_path)
    assert nodes.worker.fetch_input(job_id)
    stems_dir = nodes.worker.folders.stems_dir(job_id)
    stems_dir.mkdir(parents=True)
    paths = {}
    for name, data in STEMS.items():
        paths[name] = stems_dir / f"{name}.wav"
        paths[name].write_bytes(data)
    nodes.worker.store_stems(job_id, paths, "audio/wav")
    nodes.worker.remove_input(job_id)
    nodes.worker.release_local(job_id)
    job = Job(id=job_id, spec=JobSpec(model="tiny"), seq=1, request_id="req", status=JobStatus.COMPLETED)
    job.expires_at = time.time() + 600
    job.result = {
        "stems": {name: {"file": f"{name}.wav", "format": "wav16", "bytes": len(data)} for name, data in STEMS.items()}
    }
    return job


def test_every_store_implements_the_interface(nodes):
    assert isinstance(nodes.api, ArtifactStore) and isinstance(nodes.worker, ArtifactStore)


def test_an_upload_reaches_the_worker_whole(nodes, tmp_path):
    job_id = uploaded(nodes, tmp_path, b"RIFF" + bytes(range(256)) * 100)
    assert nodes.worker.fetch_input(job_id)
    assert nodes.worker.folders.input_path(job_id).read_bytes() == b"RIFF" + bytes(range(256)) * 100
    assert nodes.worker.fetch_input(job_id), "a second look (a re-run) finds it too"


def test_an_input_that_was_never_stored_or_was_removed_is_lost(nodes, tmp_path):
    assert not nodes.worker.fetch_input(new_job_id())
    job_id = uploaded(nodes, tmp_path)
    nodes.api.remove_input(job_id)
    assert not nodes.worker.fetch_input(job_id)


def test_stem_links_name_every_stem_and_lead_to_its_bytes(nodes, tmp_path):
    job = completed(nodes, tmp_path)
    links = nodes.api.stem_links(job)
    assert set(links) == set(STEMS)
    for name, link in links.items():
        assert (link["format"], link["bytes"]) == ("wav16", len(STEMS[name]))
        assert nodes.fetch(nodes.api, job, name, link["url"]) == STEMS[name]


def test_a_stem_download_is_its_bytes_and_an_unknown_name_is_a_key_error(nodes, tmp_path):
    job = completed(nodes, tmp_path)
    where = nodes.api.stem_download(job, "drums")
    assert isinstance(where, StemDownload) and where.format == "wav16"
    assert (where.path is None) != (where.url is None)
    data = where.path.read_bytes() if where.path is not None else httpx.get(where.url, timeout=30).content
    assert data == STEMS["drums"]
    with pytest.raises(KeyError):
        nodes.api.stem_download(job, "../../etc/passwd")


def test_the_stems_are_listed_opened_and_zipped_whole(nodes, tmp_path):
    job = completed(nodes, tmp_path)
    openers = nodes.api.stem_openers(job)
    assert set(openers) == {f"{name}.wav" for name in STEMS}
    with openers["vocals.wav"]() as stem:
        assert stem.read() == STEMS["vocals"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(iter_zip(nodes.api.stem_openers(job)))))
    assert archive.testzip() is None
    assert {entry: archive.read(entry) for entry in archive.namelist()} == {
        f"{name}.wav": data for name, data in STEMS.items()
    }


def test_the_zip_link_is_the_api_route_signed_until_the_result_expires(nodes, tmp_path):
    job = completed(nodes, tmp_path)
    url = nodes.api.zip_link(job)
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == f"/api/v1/jobs/{job.id}/stems.zip"
    assert int(query["expires"][0]) == int(job.expires_at or 0)
    assert SIGNER.verify("stem", job.id, "stems.zip", query["expires"][0], query["sig"][0])


def test_a_stem_that_is_gone_is_a_key_error_before_any_zip_byte(nodes, tmp_path):
    job = completed(nodes, tmp_path)
    gone = _drop_one_stem(nodes, job, "drums.wav")
    with pytest.raises(KeyError) as raised:
        nodes.api.stem_openers(job)
    assert gone in str(raised.value)


def _drop_one_stem(nodes: Nodes, job: Job, filename: str) -> str:
    store: Any = nodes.api
    if isinstance(store, LocalArtifactStore):
        store.folders.stem_path(job.id, filename).unlink()
    else:
        store.bucket._s3.delete_object(Bucket=store.bucket.bucket, Key=store.bucket.stem_key(job.id, filename))
    return filename


def test_remove_at_expiry_leaves_nothing_to_fetch(nodes, tmp_path):
    job = completed(nodes, tmp_path)
    other = completed(nodes, tmp_path)
    nodes.api.remove(job.id)
    with pytest.raises(KeyError):
        nodes.api.stem_openers(job)
    assert not nodes.worker.fetch_input(job.id)
    assert not nodes.api.folders.job_dir(job.id).exists()
    assert set(nodes.api.stem_openers(other)) == {f"{name}.wav" for name in STEMS}, "another job was touched"


def test_clear_stems_empties_the_local_stems_of_an_attempt(nodes, tmp_path):
    job_id = uploaded(nodes, tmp_path)
    assert nodes.worker.fetch_input(job_id)
    stems_dir = nodes.worker.folders.stems_dir(job_id)
    stems_dir.mkdir(parents=True)
    (stems_dir / "vocals.wav").write_bytes(b"half a stem")
    nodes.worker.clear_stems(job_id)
    assert not stems_dir.exists()
    assert nodes.worker.fetch_input(job_id), "the input is kept for the re-run"


def test_a_stem_served_by_the_store_downloads_under_the_songs_name(nodes, tmp_path):
    """A presigned link asks the bucket to answer with the Content-Disposition the API's own route
    sends (`Song Title - vocals.wav`, S3's `response-content-disposition`, which S3, R2 and MinIO
    apply; the moto server of this machine ignores it, so the link is read, and fetched whole).
    A local stem is served, and named, by the API route."""
    job = completed(nodes, tmp_path)
    job.title = "Jóga"
    where = nodes.api.stem_download(job, "vocals")
    if where.url is None:
        assert where.path is not None and where.path.is_file()
        return
    expected = "attachment; filename=\"Joga - vocals.wav\"; filename*=UTF-8''J%C3%B3ga%20-%20vocals.wav"
    for url in (where.url, nodes.api.stem_links(job)["vocals"]["url"]):
        assert parse_qs(urlsplit(url).query)["response-content-disposition"] == [expected]
        assert nodes.fetch(nodes.api, job, "vocals", url) == STEMS["vocals"]


PREVIEWS = {"vocals": (b"OggS-vocals" * 30, b'{"rate":50,"peaks":[0.5]}')}


def with_previews(nodes: Nodes, tmp_path: Path) -> Job:
    """A completed job whose worker also stored the vocals' preview and peaks beside the stems."""
    job = completed(nodes, tmp_path)
    stems_dir = nodes.worker.folders.stems_dir(job.id)
    stems_dir.mkdir(parents=True, exist_ok=True)
    preview, peaks = stems_dir / "vocals.preview.ogg", stems_dir / "vocals.peaks.json"
    preview.write_bytes(PREVIEWS["vocals"][0])
    peaks.write_bytes(PREVIEWS["vocals"][1])
    nodes.worker.store_stems(job.id, {"vocals": preview}, "audio/ogg")
    nodes.worker.store_stems(job.id, {"vocals": peaks}, "application/json")
    nodes.worker.release_local(job.id)
    job.result["stems"]["vocals"].update(preview=preview.name, peaks=peaks.name)  # type: ignore[index]
    return job


def test_preview_and_peaks_links_are_the_api_routes_signed_and_lead_to_their_bytes(nodes, tmp_path):
    job = with_previews(nodes, tmp_path)
    links = nodes.api.stem_links(job)
    assert links["drums"]["preview_url"] is None and links["drums"]["peaks_url"] is None
    for kind, data in zip(("preview", "peaks"), PREVIEWS["vocals"], strict=True):
        url = links["vocals"][f"{kind}_url"]
        query = parse_qs(urlsplit(url).query)
        assert urlsplit(url).path == f"/api/v1/jobs/{job.id}/stems/vocals/{kind}"
        assert SIGNER.verify("stem", job.id, f"vocals/{kind}", query["expires"][0], query["sig"][0])
        where = nodes.api.preview_download(job, "vocals", kind)
        assert where.format == kind and where.url is None
        if where.path is not None:
            assert where.path.read_bytes() == data
        else:
            assert where.opener is not None
            with where.opener() as body:
                assert body.read() == data
    for name, kind in (("drums", "preview"), ("vocals", "input"), ("nope", "peaks")):
        with pytest.raises(KeyError):
            nodes.api.preview_download(job, name, kind)


def test_previews_stay_out_of_the_zip_and_go_at_expiry(nodes, tmp_path):
    job = with_previews(nodes, tmp_path)
    assert set(nodes.api.stem_openers(job)) == {f"{name}.wav" for name in STEMS}
    nodes.api.remove(job.id)
    with pytest.raises(KeyError):
        nodes.api.preview_download(job, "vocals", "preview")


def test_local_stems_are_every_stem_as_a_file_for_the_block(nodes, tmp_path):
    job = completed(nodes, tmp_path)
    before = set(nodes.api.folders.root.iterdir())
    with nodes.api.local_stems(job) as paths:
        assert {name: path.read_bytes() for name, path in paths.items()} == STEMS
    assert set(nodes.api.folders.root.iterdir()) == before, "a downloaded copy is removed after the block"
    assert nodes.api.stem_openers(job), "the kept stems are still there"
    _drop_one_stem(nodes, job, "drums.wav")
    with pytest.raises(KeyError), nodes.api.local_stems(job):
        pass


def test_the_mix_link_is_the_api_route_signed_until_the_result_expires(nodes, tmp_path):
    job = completed(nodes, tmp_path)
    url = nodes.api.mix_link(job)
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == f"/api/v1/jobs/{job.id}/mix"
    assert SIGNER.verify("stem", job.id, "mix", query["expires"][0], query["sig"][0])
