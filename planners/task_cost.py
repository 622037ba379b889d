"""A task's reward as a planning cost: predicted frames read through a state probe.

A world model predicts frames, not states; the task's reward is defined on state (joint
angles, object positions in the camera frame). The state probe (`models/probe.py`) reads
the state off a frame, so the cost of a candidate is minus the task's reward of what the
probe sees in its predicted frame. The oracle plans with the same cost on the frames the
simulator renders, so the oracle gap measures the dynamics alone, not the reward model.
"""
from __future__ import annotations

import numpy as np
import torch

PROBE_REDUCTIONS = ("final", "sum")


def check_probe_for_task(probe, task, source: str = "the probe") -> None:
    """Refuse early, naming the missing targets, a probe that cannot read what `task` rewards."""
    from hwm_env.tasks import Readout

    try:
        Readout.from_targets(np.zeros((1, len(probe.target_names)), np.float32), list(probe.target_names), task.name)
    except ValueError as error:
        raise ValueError(f"{source}: {error}; train a probe on simulator data (hwm train probe)") from None


class ProbeTaskCost:
    """-task.reward of the probe's readout of each candidate's final frame (or the sum over frames).

    trajectory: latents/tokens (N, H, ...) decoded by `tokenizer`, or uint8 frames (N, H, h, w, 3).
    """

    def __init__(self, probe, task, episode, tokenizer=None, reduce: str = "final"):
        if reduce not in PROBE_REDUCTIONS:
            raise ValueError(f"ProbeTaskCost: reduce must be one of {PROBE_REDUCTIONS}, got '{reduce}'")
        check_probe_for_task(probe, task)
        self.probe, self.task, self.episode, self.tokenizer, self.reduce = probe, task, episode, tokenizer, reduce

    def frames(self, trajectory) -> torch.Tensor:
        """uint8 frames (N, H', h, w, 3) of the steps the cost reads (the last only for "final")."""
        trajectory = trajectory if isinstance(trajectory, torch.Tensor) else torch.as_tensor(np.asarray(trajectory))
        if self.reduce == "final":
            trajectory = trajectory[:, -1:]
        if trajectory.dtype == torch.uint8 and trajectory.ndim == 5 and trajectory.shape[-1] == 3:
            return trajectory
        if self.tokenizer is None:
            raise ValueError("ProbeTaskCost: got latents but no tokenizer to decode them into frames")
        return self.tokenizer.decode(trajectory).cpu()

    def rewards(self, trajectory) -> np.ndarray:
        """(N, H') task rewards of the frames the cost reads."""
        from hwm_env.tasks import Readout

        frames = self.frames(trajectory)
        count, steps = frames.shape[:2]
        values = self.probe.predict(frames.reshape(count * steps, *frames.shape[2:]))
        readout = Readout.from_targets(values.reshape(count, steps, -1), list(self.probe.target_names), self.task.name)
        return np.asarray(self.task.reward(readout, self.episode), dtype=np.float64)

    def __call__(self, trajectory) -> torch.Tensor:
        return torch.as_tensor(-self.rewards(trajectory).sum(axis=1), dtype=torch.float32)

    def __repr__(self) -> str:
        return f"ProbeTaskCost(task={self.task.name}, reduce={self.reduce})"
