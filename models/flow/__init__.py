"""Flow-HWM: an MMDiT over past/future video and action streams, trained with rectified flow.

`mmdit.py` holds the network and its config, `flow_matching.py` the time sampling, path and
samplers, `model.py` the world-model API (`predict`, `rollout`, checkpoints).
"""
from models.flow.mmdit import VARIANTS, FlowConfig, MMDiT
from models.flow.model import FlowHWM, latent_statistics

__all__ = ["FlowConfig", "FlowHWM", "MMDiT", "VARIANTS", "latent_statistics"]
