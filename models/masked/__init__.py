"""Masked-HWM: a spatio-temporal MaskGIT over discrete tokens whose predictions follow the actions.

`st_transformer.py` holds the network and `MaskedConfig`, `maskgit.py` the masking schedule,
corruption, loss and decoding, `model.py` the world-model API (`predict`, `rollout`,
checkpoints) shared with Flow-HWM.
"""
from models.masked.model import MaskedHWM, config_from_dict, masked_objective
from models.masked.st_transformer import VARIANTS, MaskedConfig

__all__ = ["MaskedHWM", "MaskedConfig", "VARIANTS", "config_from_dict", "masked_objective"]
