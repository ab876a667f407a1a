"""Audio I/O of the model layer: recognise, probe and decode inputs in blocks; write stems incrementally."""

from __future__ import annotations

from .decode import AudioInfo, decode_blocks, probe
from .encode import CLIP_MODES, FORMATS, OutputFormat, StemWriter
from .sniff import sniff_format

__all__ = [
    "CLIP_MODES",
    "FORMATS",
    "AudioInfo",
    "OutputFormat",
    "StemWriter",
    "decode_blocks",
    "probe",
    "sniff_format",
]
