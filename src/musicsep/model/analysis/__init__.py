"""Track analysis: tempo and beats, key, loudness and duration, computed block by block.

`AnalysisResult` (schema.py) is the one result model the CLI, the server's events and the
clients share. librosa, soxr and pyloudnorm are imported only when an analysis runs.
"""

from __future__ import annotations

from musicsep.model.analysis.analyze import analyze_blocks, analyze_file, analyze_stems
from musicsep.model.analysis.schema import AnalysisResult

__all__ = ["AnalysisResult", "analyze_blocks", "analyze_file", "analyze_stems"]
