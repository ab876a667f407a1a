"""Where a job's files live on local disk, and the zip of its stems.

Layout under the data dir: `jobs/<job_id>/input` (the upload, removed when the job ends) and
`jobs/<job_id>/stems/<stem>.<ext>`. Files are found by job id plus a stem name that must be one of
the job's own result names: no path the user typed ever reaches the filesystem.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from musicsep.service.jobs import Job
from musicsep.service.live import LocalLiveAudio
from musicsep.service.signing import Signer

#: Builds the public link of one job resource: (job_id, stem name or "stems.zip", expires, sig).
LinkBuilder = Callable[[str, str, int, str], str]

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_ZIP_CHUNK = 1 << 20

#: What a stem entry may hold besides the stem: its compressed preview and its waveform peaks.
PREVIEW_KINDS = ("preview", "peaks")

#: Opens one stored stem for reading (a local file, or an S3 object's streaming body); called
#: only when the zip reaches that stem, so one stem at a time is open.
StemOpener = Callable[[], BinaryIO]


def discard(upload: Path | None) -> None:
    """Remove an upload that no job took (refused, or an idempotent repeat); None: nothing to do."""
    if upload is not None:
        upload.unlink(missing_ok=True)


@dataclass(frozen=True)
class StemDownload:
    """Where one stem's bytes are: a local `path` the API serves (Range requests and all), a
    `url` it redirects to (a presigned bucket URL), or an `opener` whose bytes the API streams
    (a preview kept in a bucket, served from the API's own origin so a page may fetch it)."""

    format: str
    path: Path | None = None
    url: str | None = None
    opener: StemOpener | None = None


class JobFolders:
    """The local folders of a job: where the pipeline reads its input and writes its stems."""

    def __init__(self, root: Path) -> None:
        self.root = root / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: str) -> Path:
        if not _JOB_ID.match(job_id):
            raise ValueError("not a job id")
        return self.root / job_id

    def input_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "input"

    def stems_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "stems"

    def stem_path(self, job_id: str, filename: str) -> Path:
        """`filename` comes from the job's stored result, never from the request."""
        return self.stems_dir(job_id) / filename

    def move_in(self, job_id: str, upload: Path) -> Path:
        """Move `upload` to the job's input path (same file system: a rename)."""
        path = self.input_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(upload, path)
        return path

    def stem_opener(self, job_id: str, filename: str) -> StemOpener:
        """Opens the stem later; its presence is checked now (KeyError when it is gone), so that
        a zip route can answer 404 before its 200 rather than cut the zip short."""
        path = self.stem_path(job_id, filename)
        if not path.is_file():
            raise KeyError(filename)
        return lambda: path.open("rb")

    def clear_stems(self, job_id: str) -> None:
        shutil.rmtree(self.stems_dir(job_id), ignore_errors=True)

    def remove_input(self, job_id: str) -> None:
        self.input_path(job_id).unlink(missing_ok=True)

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def inline(self, job_id: str, stems: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The stems of a result with their bytes as base64 (`payload=base64`) instead of links."""
        return {
            name: {
                "data": base64.b64encode(self.stem_path(job_id, info["file"]).read_bytes()).decode(),
                "format": info["format"],
                "bytes": info["bytes"],
            }
            for name, info in stems.items()
        }


def stems_of(job: Job) -> dict[str, dict[str, Any]]:
    """{stem name: {file, format, bytes}} of the job's stored result (empty without one)."""
    return dict((job.result or {}).get("stems", {}))


def signed_link(signer: Signer, links: LinkBuilder, job: Job, name: str) -> str:
    """The API's link to `name` (a stem, "<stem>/preview", "<stem>/peaks", "stems.zip" or "mix"),
    signed until the result expires."""
    expires, sig = signer.sign_until("stem", job.id, name, int(job.expires_at or 0))
    return links(job.id, name, expires, sig)


def preview_links(signer: Signer, links: LinkBuilder, job: Job, name: str, info: dict[str, Any]) -> dict[str, Any]:
    """`preview_url` and `peaks_url` of a stem entry: the API's signed routes, wherever the files
    are kept (the page fetches them from its own origin); None for a stem without previews."""
    return {
        f"{kind}_url": signed_link(signer, links, job, f"{name}/{kind}") if info.get(kind) else None
        for kind in PREVIEW_KINDS
    }


def preview_file(job: Job, name: str, kind: str) -> str:
    """The file name of stem `name`'s preview or peaks from the job's result; KeyError when none."""
    if kind not in PREVIEW_KINDS:
        raise KeyError(kind)
    filename = stems_of(job)[name].get(kind)
    if not filename:
        raise KeyError(name)
    return str(filename)


class LocalArtifactStore:
    """The embedded mode's artifacts (and scale-out's without a bucket, on a shared data dir):
    the files stay in the job's folders, and the links are the API's own signed routes."""

    def __init__(self, folders: JobFolders, signer: Signer, links: LinkBuilder) -> None:
        self.folders = folders
        self.live = LocalLiveAudio(folders)
        self._signer = signer
        self._links = links

    def accept_input(self, job_id: str, upload: Path) -> None:
        self.folders.move_in(job_id, upload)

    def fetch_input(self, job_id: str) -> bool:
        return self.folders.input_path(job_id).exists()

    def store_stems(self, job_id: str, stems: Mapping[str, Path], media_type: str) -> None:
        return None  # written in place by the pipeline: that is where downloads read them

    def release_local(self, job_id: str) -> None:
        return None  # the local copies are the kept ones

    def stem_links(self, job: Job) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "url": signed_link(self._signer, self._links, job, name),
                "format": info["format"],
                "bytes": info["bytes"],
                **preview_links(self._signer, self._links, job, name, info),
            }
            for name, info in stems_of(job).items()
        }

    def zip_link(self, job: Job) -> str:
        return signed_link(self._signer, self._links, job, "stems.zip")

    def mix_link(self, job: Job) -> str:
        return signed_link(self._signer, self._links, job, "mix")

    def stem_download(self, job: Job, name: str) -> StemDownload:
        info = stems_of(job)[name]
        return StemDownload(info["format"], path=self.folders.stem_path(job.id, info["file"]))

    def preview_download(self, job: Job, name: str, kind: str) -> StemDownload:
        filename = preview_file(job, name, kind)
        path = self.folders.stem_path(job.id, filename)
        if not path.is_file():
            raise KeyError(filename)
        return StemDownload(kind, path=path)

    def stem_openers(self, job: Job) -> dict[str, StemOpener]:
        return {info["file"]: self.folders.stem_opener(job.id, info["file"]) for info in stems_of(job).values()}

    @contextmanager
    def local_stems(self, job: Job) -> Iterator[dict[str, Path]]:
        paths = {name: self.folders.stem_path(job.id, info["file"]) for name, info in stems_of(job).items()}
        for path in paths.values():
            if not path.is_file():
                raise KeyError(path.name)
        yield paths

    def clear_stems(self, job_id: str) -> None:
        self.folders.clear_stems(job_id)

    def remove_input(self, job_id: str) -> None:
        self.folders.remove_input(job_id)

    def remove(self, job_id: str) -> None:
        self.folders.remove(job_id)


class _Sink:
    """A write-only file object whose bytes the zip generator hands out as they are written."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.buffer.extend(data)
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def iter_file(opener: StemOpener) -> Iterator[bytes]:
    """One stored file's bytes, 1 MiB at a time (an S3 body is never read whole)."""
    with opener() as source:
        while chunk := source.read(_ZIP_CHUNK):
            yield chunk


def iter_zip(files: Mapping[str, StemOpener]) -> Iterator[bytes]:
    """Stream a zip of `files` (archive name -> opener of its bytes) in bounded memory.

    Each source is opened when its turn comes and read 1 MiB at a time, so memory stays one
    chunk whatever the sizes, for local files and for S3 bodies alike. The stdlib writer supports
    unseekable outputs (it writes data descriptors), so this needs no extra package; stems are
    already audio, so they are stored, not deflated.
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, opener in files.items():
            with opener() as source, archive.open(name, "w", force_zip64=True) as entry:
                while chunk := source.read(_ZIP_CHUNK):
                    entry.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
