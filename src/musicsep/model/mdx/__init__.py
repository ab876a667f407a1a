"""UVR's MDX-Net models (`.onnx`), run with onnxruntime and streamed like the Demucs engine.

`load_mdx(path, params, name=..., device=...)` opens a file with its parameters (from musicsep's
catalog, or from UVR's hash table through `mdx_params_for_file`); the separator follows the
engine contract of docs/architecture.md. Importing this package does not import onnxruntime.
"""

from __future__ import annotations

from musicsep.model.mdx.params import (
    MdxParams,
    mdx_params_for_file,
    missing_parameters,
    read_uvr_model_data,
    secondary_of,
    stem_name,
    uvr_model_hash,
)
from musicsep.model.mdx.separator import MdxPass, MdxSeparator, load_mdx

__all__ = [
    "MdxParams",
    "MdxPass",
    "MdxSeparator",
    "load_mdx",
    "mdx_params_for_file",
    "missing_parameters",
    "read_uvr_model_data",
    "secondary_of",
    "stem_name",
    "uvr_model_hash",
]
