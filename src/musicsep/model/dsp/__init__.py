"""The weight-free `dsp` separator: drums, bass, other and vocals from signal cues, no model.

Importing this package is cheap; librosa loads when a track is separated.
"""

from __future__ import annotations

from musicsep.model.dsp.separator import DspSeparator

__all__ = ["DspSeparator"]
