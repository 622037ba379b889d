"""What Flow-HWM and Masked-HWM share as world models (the common API's attributes).

Envs and planners take either family; these attributes are read from each model's config,
so they are written once here.
"""
from __future__ import annotations

import torch
from torch import nn


class WorldModel(nn.Module):
    """Base of the world-model families: `num_past`, `num_future`, `action_dim`, `device`."""

    config: object

    @property
    def num_past(self) -> int:
        return self.config.num_past

    @property
    def num_future(self) -> int:
        return self.config.num_future

    @property
    def action_dim(self) -> int:
        return self.config.action_dim

    @property
    def device(self) -> torch.device:
        return next(self.buffers(), next(self.parameters())).device
