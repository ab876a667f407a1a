"""Model names in the scale-out worker: defence in depth. A job whose spec names a path (a
job written into Redis by someone else than the API, which refuses such names) fails with a clear
reason, and nothing outside the model folder is read."""

from __future__ import annotations

import shutil

from model_name_fixtures import model_places, weight_reads  # noqa: F401  (fixtures)
from musicsep.config import Settings
from musicsep.model.loading import ModelLoader
from musicsep.scaleout.assembly import redis_client, scaleout_service
from musicsep.scaleout.worker import DeliveredJobs
from musicsep.service.jobs import Job, JobSpec, JobStatus, new_job_id
from musicsep.service.signing import Signer


def test_a_worker_fails_a_job_whose_model_is_a_path(
    model_places, weight_reads, redis_url, redis_prefix, tmp_path, make_clip
):
    """Was: the worker loaded `outside/evil.safetensors` and completed the job with it."""
    weight_reads.watched.append(model_places.outside)
    settings = Settings(
        queue="celery",
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        data_dir=tmp_path / "data",
        model_repo=model_places.repo,
        offline=True,
        fallback="tiny_one,dsp",
        device="cpu",
    )
    loader = ModelLoader(repo=settings.model_repo, offline=True, fallback=settings.fallback_chain)
    service = scaleout_service(
        settings, loader=loader, signer=Signer(b"k" * 32), links=lambda job, name, expires, sig: f"/{job}/{name}"
    )
    job = Job(id=new_job_id(), spec=JobSpec(model="../outside/evil", analyze=False), seq=0, request_id="test")
    service.store.insert_job(job)
    folders = service.artifacts.folders
    folders.input_path(job.id).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(make_clip(seconds=1.0), folders.input_path(job.id))
    DeliveredJobs(service.parts, redis_client(settings)).run_delivered(job.id)
    finished = service.store.get_job(job.id)
    assert finished.status is JobStatus.FAILED
    assert finished.error["code"] == "model_unavailable" and "letters, digits" in finished.error["message"]
    assert loader.loaded() == [] and weight_reads.count == 0 and weight_reads.opened == []
