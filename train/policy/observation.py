"""What the policy sees: a tokenizer's latents as feature vectors, and the goal-conditioned observation."""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch
from gymnasium import spaces

from train.policy.settings import POLICIES


class LatentFeatures:
    """A tokenizer's latents as flat float vectors; their mean squared difference is the task's distance.

    Continuous latents are used as they are, token grids through the tokenizer's FSQ code
    vectors: the same distance as `HWMEnv`'s goal reward and `planners.costs.LatentGoalCost`.
    """

    def __init__(self, tokenizer):
        from planners.costs import code_lookup

        self.tokenizer = tokenizer
        self.codes = None
        if tokenizer.kind == "discrete":
            self.codes = code_lookup(tokenizer)
            if self.codes is None:
                raise ValueError(
                    f"{type(tokenizer).__name__}: the goal distance of token grids needs a tokenizer with code "
                    "vectors (indices_to_codes, e.g. the built-in FSQ tokenizer)"
                )

    def __call__(self, latents) -> np.ndarray:
        """Latents (N, C, h, w) or tokens (N, h, w) -> features (N, D) float32."""
        latents = torch.as_tensor(latents)
        with torch.no_grad():
            if self.codes is None:
                features = latents.float().flatten(1)
            else:
                features = self.codes(latents.long().to(self.tokenizer.device)).float().flatten(1)  # (N, h*w*d)
        return features.cpu().numpy()

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 frames (N, H, W, 3) -> features (N, D)."""
        return self(self.tokenizer.encode(np.ascontiguousarray(frames)[:, None])[:, 0])

    @functools.cached_property
    def dim(self) -> int:
        """D, the feature size of one frame."""
        height, width = self.tokenizer.image_size
        return self.encode(np.zeros((1, height, width, 3), np.uint8)).shape[1]


def latent_distance(features: np.ndarray, goal_features: np.ndarray) -> np.ndarray:
    """Mean squared feature distance per row, (N, D) x (N, D) -> (N,)."""
    return np.mean((features - goal_features) ** 2, axis=1)


class GoalObservation:
    """Builds the goal-conditioned observation (see the module docstring) from batched parts."""

    def __init__(self, policy: str, feature_dim: int, image_size: Sequence[int], action_low, action_high):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {list(POLICIES)}, got '{policy}'")
        self.policy = policy
        low, high = np.asarray(action_low, np.float32), np.asarray(action_high, np.float32)
        if policy == "mlp":
            self.space = spaces.Box(-np.inf, np.inf, (2 * feature_dim + 2 * low.shape[0],), np.float32)
        else:
            height, width = image_size
            self.space = spaces.Dict({
                "image": spaces.Box(0, 255, (height, width, 6), np.uint8),
                "action": spaces.Box(np.tile(low, 2), np.tile(high, 2), (2 * low.shape[0],), np.float32),
            })

    def view(self, features: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """What of a frame the policy looks at: its latent features (mlp) or its pixels (cnn)."""
        return features if self.policy == "mlp" else frames

    def build(self, current: np.ndarray, goal: np.ndarray, commands: np.ndarray):
        """Views (N, ...) of the current frames and the goals, `Commander` commands (N, 2A) -> batched observation."""
        commands = commands.astype(np.float32)
        if self.policy == "mlp":
            return np.concatenate([current, goal, commands], axis=1).astype(np.float32)  # (N, 2D + 2A)
        return {"image": np.concatenate([current, goal], axis=-1), "action": commands}  # (N, H, W, 6)
