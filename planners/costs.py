"""Costs that score rolled-out trajectories, (N, H, ...) -> (N,), lower is better.

`LatentGoalCost` is DINO-WM's objective: the mean squared distance between a predicted
latent and the goal's latent, the goal being an image encoded once by the tokenizer.
It also accepts frame trajectories (encoding them with the same tokenizer), so a planner
driving the true simulator (frames) and one driving a world model (latents) optimise
the very same number.

Discrete tokens (Masked-HWM) are compared through the tokenizer's code vectors when it
has them (FSQ: each index is a point on a grid in [-1, 1]^d), because then a token one
level off costs less than an unrelated one and the planner gets a slope to descend.
Without code vectors we fall back to one-hot comparison, whose squared distance is
proportional to the fraction of differing cells (flat between "close" and "far" codes).

`ImageGoalCost` compares images instead: predicted latents are decoded, and both the
prediction and the goal image are blurred before the squared distance. Blurring is the
classic coarse-to-fine trick of image alignment: it widens the basin in which a shifted
view still costs less the nearer it is, and it discounts the fine detail a world model's
mean prediction blurs anyway (measured in `benchmarks/planning_cost_ranking.py`).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

REDUCTIONS = ("final", "sum")
TOKEN_EMBEDDINGS = ("auto", "codes", "onehot")


def code_lookup(tokenizer) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The tokenizer's `indices_to_codes` (tokens (...) -> codes (..., d)), if it has one."""
    for owner in (tokenizer, getattr(tokenizer, "fsq", None)):
        lookup = getattr(owner, "indices_to_codes", None)
        if callable(lookup):
            return lookup
    return None


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        return value
    raise ValueError(f"{name} must be a torch tensor or numpy array, got {type(value).__name__}")


def _is_frames(trajectory: torch.Tensor) -> bool:
    return trajectory.dtype == torch.uint8 and trajectory.ndim == 5 and trajectory.shape[-1] == 3


def goal_frame_tensor(goal_frame, image_size=None) -> torch.Tensor:
    """The goal image as a (H, W, 3) uint8 tensor, at the tokenizer's `image_size` when one is given."""
    frame = _as_tensor(goal_frame, "goal_frame")
    size_ok = image_size is None or tuple(frame.shape[:2]) == tuple(image_size)
    if frame.dtype != torch.uint8 or frame.ndim != 3 or frame.shape[-1] != 3 or not size_ok:
        expected = "(H, W, 3)" if image_size is None else f"({image_size[0]}, {image_size[1]}, 3)"
        whose = "" if image_size is None else ", the tokenizer's size"
        raise ValueError(f"goal image is {tuple(frame.shape)} {frame.dtype}; expected uint8 {expected} frames{whose}")
    return frame


class LatentGoalCost:
    """Mean squared distance to a goal latent, at the final step (`reduce="final"`) or summed over steps.

    goal_latent: one latent frame, float (C, h, w) or integer tokens (h, w).
    tokenizer: needed to score frame trajectories (N, H, H_img, W_img, 3) uint8, and supplies
        code vectors for tokens.
    token_embedding: "auto" (codes if the tokenizer has them, else one-hot), "codes", "onehot".
    """

    def __init__(
        self,
        goal_latent,
        reduce: str = "final",
        tokenizer=None,
        token_embedding: str = "auto",
        encode_batch_size: int = 64,
    ):
        if reduce not in REDUCTIONS:
            raise ValueError(f"LatentGoalCost: reduce must be one of {REDUCTIONS}, got '{reduce}'")
        if token_embedding not in TOKEN_EMBEDDINGS:
            raise ValueError(f"LatentGoalCost: token_embedding must be one of {TOKEN_EMBEDDINGS}, got '{token_embedding}'")
        goal = _as_tensor(goal_latent, "goal_latent").detach()
        self.discrete = not goal.is_floating_point()
        if self.discrete and goal.ndim != 2:
            raise ValueError(f"LatentGoalCost: a token goal must have shape (h, w), got {tuple(goal.shape)}")
        if not self.discrete and goal.ndim != 3:
            raise ValueError(f"LatentGoalCost: a continuous goal latent must have shape (C, h, w), got {tuple(goal.shape)}")
        if not self.discrete and not torch.isfinite(goal).all():
            raise ValueError("LatentGoalCost: goal_latent contains NaN or inf")
        self.goal = goal.long() if self.discrete else goal.float()
        self.reduce = reduce
        self.tokenizer = tokenizer
        self.encode_batch_size = int(encode_batch_size)
        self.codes = None
        if self.discrete and token_embedding != "onehot":
            self.codes = code_lookup(tokenizer) if tokenizer is not None else None
            if self.codes is None and token_embedding == "codes":
                raise ValueError("LatentGoalCost: token_embedding='codes' needs a tokenizer with indices_to_codes")

    @classmethod
    def from_image(cls, tokenizer, goal_frame, reduce: str = "final", token_embedding: str = "auto") -> "LatentGoalCost":
        """Encode the goal image (H, W, 3) uint8 once with `tokenizer` and keep the tokenizer for frame trajectories."""
        frame = goal_frame_tensor(goal_frame, tokenizer.image_size)
        goal_latent = tokenizer.encode(frame[None, None])[0, 0]  # (C, h, w) | (h, w)
        return cls(goal_latent.cpu(), reduce=reduce, tokenizer=tokenizer, token_embedding=token_embedding)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (N, H, H_img, W_img, 3) uint8 -> latents (N, H', ...), in batches of trajectories."""
        if self.tokenizer is None:
            raise ValueError(
                "LatentGoalCost: got frames (N, H, H_img, W_img, 3) uint8 but no tokenizer to encode them; "
                "build the cost with LatentGoalCost.from_image(tokenizer, goal_frame)"
            )
        chunks = [self.tokenizer.encode(chunk) for chunk in frames.split(self.encode_batch_size)]
        return torch.cat(chunks, dim=0)

    def step_distances(self, trajectory) -> torch.Tensor:
        """Distance of every step to the goal, (N, H) float32."""
        trajectory = _as_tensor(trajectory, "trajectory")
        if _is_frames(trajectory):
            trajectory = self.encode(trajectory)
        if trajectory.ndim != self.goal.ndim + 2 or tuple(trajectory.shape[2:]) != tuple(self.goal.shape):
            expected = ("N", "H", *self.goal.shape)
            raise ValueError(
                f"LatentGoalCost: trajectory must have shape {expected} (latents like the goal) or be frames "
                f"(N, H, H_img, W_img, 3) uint8, got {tuple(trajectory.shape)} {trajectory.dtype}"
            )
        if trajectory.is_floating_point() == self.discrete:
            kind = "tokens" if self.discrete else "continuous latents"
            raise ValueError(f"LatentGoalCost: the goal is {kind} but the trajectory has dtype {trajectory.dtype}")
        goal = self.goal.to(trajectory.device)
        if not self.discrete:
            squared = (trajectory.float() - goal) ** 2  # (N, H, C, h, w)
        elif self.codes is not None:
            squared = (self.codes(trajectory.long()) - self.codes(goal)) ** 2  # (N, H, h, w, d)
        else:
            squared = (trajectory.long() != goal).float()  # one-hot distance / 2, per cell
        return squared.flatten(2).mean(dim=-1)  # (N, H)

    def __call__(self, trajectory) -> torch.Tensor:
        distances = self.step_distances(trajectory)  # (N, H)
        return distances[:, -1] if self.reduce == "final" else distances.sum(dim=1)

    def __repr__(self) -> str:
        embedding = "" if not self.discrete else f", tokens via {'codes' if self.codes is not None else 'one-hot'}"
        return f"LatentGoalCost(goal {tuple(self.goal.shape)}, reduce='{self.reduce}'{embedding})"


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) float images (edges replicated); sigma in pixels, 0 = none."""
    if sigma <= 0:
        return images
    radius = max(1, int(math.ceil(2 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    images = torch.nn.functional.pad(images, (radius,) * 4, mode="replicate")
    images = torch.nn.functional.conv2d(images, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return torch.nn.functional.conv2d(images, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


class ImageGoalCost:
    """Mean squared distance between the blurred goal image and each blurred predicted frame, in [0, 1] units.

    Trajectories are frames (N, H, H_img, W_img, 3) uint8 (the simulator's) or latents/tokens,
    decoded with `tokenizer`; with `reduce="final"` only the last step is decoded.
    blur_sigma: Gaussian sigma in pixels (0 = raw pixels).
    """

    def __init__(self, goal_frame, tokenizer=None, blur_sigma: float = 4.0, reduce: str = "final",
                 decode_batch_size: int = 64):
        if reduce not in REDUCTIONS:
            raise ValueError(f"ImageGoalCost: reduce must be one of {REDUCTIONS}, got '{reduce}'")
        if not (math.isfinite(blur_sigma) and blur_sigma >= 0):
            raise ValueError(f"ImageGoalCost: blur_sigma must be a finite number of pixels >= 0, got {blur_sigma}")
        frame = goal_frame_tensor(goal_frame, None if tokenizer is None else tokenizer.image_size)
        self.tokenizer = tokenizer
        self.blur_sigma = float(blur_sigma)
        self.reduce = reduce
        self.decode_batch_size = int(decode_batch_size)
        self.goal = self._prepare(frame[None])  # (1, 3, H, W)

    def _prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> blurred (N, 3, H, W) float32 in [0, 1]."""
        return gaussian_blur(frames.permute(0, 3, 1, 2).float() / 255.0, self.blur_sigma)

    def frames(self, trajectory: torch.Tensor) -> torch.Tensor:
        """Frames (N, H', H_img, W_img, 3) uint8 of a frame or latent trajectory."""
        if _is_frames(trajectory):
            return trajectory
        if self.tokenizer is None:
            raise ValueError("ImageGoalCost: got latents but no tokenizer to decode them; pass tokenizer=")
        chunks = [self.tokenizer.decode(chunk) for chunk in trajectory.split(self.decode_batch_size)]
        return torch.cat(chunks, dim=0).cpu()

    def step_distances(self, trajectory) -> torch.Tensor:
        """Distance of every step to the goal, (N, H) float32."""
        frames = self.frames(_as_tensor(trajectory, "trajectory"))
        if frames.ndim != 5 or tuple(frames.shape[2:4]) != tuple(self.goal.shape[2:]):
            raise ValueError(f"ImageGoalCost: frames must be (N, H, {self.goal.shape[2]}, {self.goal.shape[3]}, 3) "
                             f"uint8, got {tuple(frames.shape)}")
        count, steps = frames.shape[:2]
        images = self._prepare(frames.flatten(0, 1))
        return ((images - self.goal.to(images.device)) ** 2).flatten(1).mean(1).view(count, steps)

    def __call__(self, trajectory) -> torch.Tensor:
        trajectory = _as_tensor(trajectory, "trajectory")
        if self.reduce == "final":
            return self.step_distances(trajectory[:, -1:])[:, 0]
        return self.step_distances(trajectory).sum(dim=1)

    def __repr__(self) -> str:
        return f"ImageGoalCost(goal {tuple(self.goal.shape[2:])}, blur_sigma={self.blur_sigma}, reduce='{self.reduce}')"


class CallableCost:
    """Any user function of a trajectory (latents, frames or states) -> (N,) costs, with its output checked."""

    def __init__(self, fn: Callable, name: str | None = None):
        if not callable(fn):
            raise ValueError(f"CallableCost needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, trajectory) -> torch.Tensor:
        costs = torch.as_tensor(self.fn(trajectory), dtype=torch.float32)
        num_candidates = len(trajectory)
        if costs.shape != (num_candidates,):
            raise ValueError(
                f"cost '{self.name}' must return shape ({num_candidates},) for {num_candidates} trajectories, "
                f"got {tuple(costs.shape)}"
            )
        return costs

    def __repr__(self) -> str:
        return f"CallableCost({self.name})"
