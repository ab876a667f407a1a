"""BS-RoFormer and Mel-Band RoFormer: PyTorch checkpoints with MSST YAML configs (loader.py)."""

from musicsep.model.roformer.loader import load_roformer

__all__ = ["load_roformer"]
