"""The work itself: audio decode/encode, model catalog and loading, streaming separation, analysis.

No HTTP and no jobs live here. torch, demucs and librosa are imported lazily by the modules
that need them, never by this package's `__init__`.
"""
