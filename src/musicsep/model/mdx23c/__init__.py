"""MDX23C (TFC-TDF-UNet v3, KUIELab): our implementation, loading the public MSST/UVR checkpoints.

No maintained package provides this network, so it is written here from the paper and the
checkpoints' key layout (network.py). Equivalence with the reference implementation was measured
with bench/mdx23c_reference_check.py: the same random weights loaded with strict=True into both
(ZFTurbo's Music-Source-Separation-Training models/mdx23c_tfc_tdf_v3.py at commit
ccc011abf7f89dd7922bb2888d48493b575c0289, and UVR's lib_v5/tfc_tdf_v3.py at 5517e0cf0d1a) give a
max abs difference of 0.0 on one full-size InstVoc HQ chunk (319 keys, 111,990,272 weights) and on
small variants with BatchNorm, GroupNorm, no norm, relu, elu and a single target.
"""

from musicsep.model.mdx23c.hparams import Mdx23cHyperparams, hyperparams_from_config
from musicsep.model.mdx23c.load import load_mdx23c
from musicsep.model.mdx23c.network import TfcTdfNet

__all__ = ["Mdx23cHyperparams", "TfcTdfNet", "hyperparams_from_config", "load_mdx23c"]
