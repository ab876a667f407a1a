"""MDX-Net parameters: what an `.onnx` file cannot say about itself, and UVR's table of them.

An MDX-Net ONNX graph declares `[batch, 4, dim_f, dim_t]` but not its STFT size (dim_f 3072
pairs with n_fft 6144 in one model and 7680 in another), nor how much to scale the primary stem
before subtracting it, nor which stem it is. musicsep's catalog says these for the models it
knows; for other files UVR keeps a table keyed by the MD5 of the file's last 10,240,000 bytes
(`model_data.json` / `model_data_new.json`), which `mdx_params_for_file` reads.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from musicsep.model.errors import ModelUnavailable

#: UVR hashes this many bytes from the end of the file (the whole file when it is smaller).
HASHED_TAIL_BYTES = 10_000 * 1024

#: UVR's keys for one MDX-Net entry; `mdx_dim_t_set` is an exponent (dim_t = 2 ** value).
UVR_KEYS = {
    "mdx_n_fft_scale_set": "n_fft",
    "mdx_dim_f_set": "dim_f",
    "mdx_dim_t_set": "dim_t",
    "compensate": "compensate",
    "primary_stem": "primary stem",
}

#: Stems that pair with each other; any other stem X pairs with no_X (UVR's "No X").
_PAIRS = {
    "vocals": "instrumental",
    "instrumental": "vocals",
    "lead_vocals": "backing_vocals",
    "backing_vocals": "lead_vocals",
}


def stem_name(uvr_stem: str) -> str:
    """musicsep's spelling of a UVR stem: `Instrumental` -> `instrumental`, `No Crowd` -> `no_crowd`."""
    return "_".join(uvr_stem.strip().lower().split())


def secondary_of(primary: str) -> str:
    """The stem `mix - primary * compensate` is: vocals <-> instrumental, X <-> no_X."""
    if primary in _PAIRS:
        return _PAIRS[primary]
    if primary.startswith("no_"):
        return primary[3:]
    return f"no_{primary}"


@dataclass(frozen=True, kw_only=True)
class MdxParams:
    """One MDX-Net model's geometry and stems (musicsep's lower-case stem names).

    `secondary` defaults to the stem paired with `primary`. `overlap` and `batch_size` are the
    defaults of a pass; a pass's own options override them.
    """

    n_fft: int
    dim_f: int
    dim_t: int
    compensate: float
    primary: str
    secondary: str = field(default="")
    hop: int = 1024
    overlap: float = 0.25
    denoise: bool = False
    batch_size: int = 1

    def __post_init__(self) -> None:
        if not self.secondary:
            object.__setattr__(self, "secondary", secondary_of(self.primary))
        problem = self._problem()
        if problem:
            raise ModelUnavailable(f"the MDX-Net parameters are not usable: {problem}")

    def _problem(self) -> str | None:
        if not (self.n_fft > 0 and self.n_fft % 2 == 0):
            return f"n_fft must be a positive even number, not {self.n_fft}"
        if not 0 < self.dim_f <= self.n_fft // 2 + 1:
            return f"dim_f must be between 1 and n_fft/2 + 1 = {self.n_fft // 2 + 1}, not {self.dim_f}"
        if self.hop <= 0 or self.dim_t < 2 or self.chunk <= self.n_fft:
            return f"a chunk of hop x (dim_t - 1) = {self.chunk} samples must be longer than n_fft = {self.n_fft}"
        if not (math.isfinite(self.compensate) and self.compensate > 0):
            return f"compensate must be a positive number, not {self.compensate}"
        if not self.primary or self.primary == self.secondary:
            return "the primary and secondary stems must be two different names"
        if not 0 <= self.overlap < 1:
            return f"overlap must be at least 0 and below 1, not {self.overlap}"
        if self.batch_size < 1:
            return f"batch size must be at least 1, not {self.batch_size}"
        return None

    @property
    def chunk(self) -> int:
        """Samples per chunk: the STFT of `hop * (dim_t - 1)` samples with center=True has dim_t frames."""
        return self.hop * (self.dim_t - 1)

    @property
    def trim(self) -> int:
        """Samples discarded at each edge of a chunk's output (the STFT's reflected padding)."""
        return self.n_fft // 2

    @classmethod
    def from_uvr(cls, entry: dict) -> MdxParams:
        """Parameters from one entry of UVR's model data; ModelUnavailable names missing keys."""
        missing = [label for key, label in UVR_KEYS.items() if key not in entry]
        if missing:
            raise ModelUnavailable(f"UVR's model data for this MDX-Net file lacks {', '.join(missing)}")
        try:
            exponent = int(entry["mdx_dim_t_set"])
            return cls(
                n_fft=int(entry["mdx_n_fft_scale_set"]),
                dim_f=int(entry["mdx_dim_f_set"]),
                dim_t=2**exponent if 0 <= exponent <= 16 else 0,
                compensate=float(entry["compensate"]),
                primary=stem_name(str(entry["primary_stem"])),
            )
        except (TypeError, ValueError) as exc:
            raise ModelUnavailable(
                f"UVR's model data for this MDX-Net file is not a number where one is needed: {exc}"
            ) from None


def uvr_model_hash(path: Path) -> str:
    """MD5 of the file's last 10,240,000 bytes (all of it when smaller): the key of UVR's table."""
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - HASHED_TAIL_BYTES))
        digest = hashlib.md5(usedforsecurity=False)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mdx_params_for_file(path: Path, model_data: dict) -> MdxParams | None:
    """The file's parameters from UVR's model data (hash -> entry), or None when it has no
    MDX-Net entry (an unknown hash, or an entry for another architecture such as an MDX23C config)."""
    entry = model_data.get(uvr_model_hash(Path(path)))
    if not isinstance(entry, dict) or not any(key.startswith("mdx_") for key in entry):
        return None
    return MdxParams.from_uvr(entry)


def read_uvr_model_data(path: Path) -> dict:
    """One of UVR's `model_data*.json` files as a dict; a malformed one is ModelUnavailable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelUnavailable(
            f"UVR's model data file {Path(path).name} cannot be read: {type(exc).__name__}"
        ) from None
    if not isinstance(data, dict):
        raise ModelUnavailable(f"UVR's model data file {Path(path).name} is not a table of model hashes")
    return data


def missing_parameters(name: str) -> ModelUnavailable:
    """The error for an ONNX file that neither the catalog nor UVR's model data describes."""
    return ModelUnavailable(
        f"model '{name}' is an MDX-Net ONNX file with no known parameters: n_fft, dim_f, dim_t, "
        "compensate and primary stem are missing (musicsep's catalog does not list it and no UVR "
        "model_data.json entry matches its hash). Put UVR's model_data.json beside it or add it "
        "to the catalog"
    )
