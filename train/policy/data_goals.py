"""Starts and goals from the world model's training data, for imagined episodes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from train.policy.settings import TaskSettings


class DataGoals:
    """Starts and goals from a data split: P context frames, the actions into them, and the frame k steps later.

    The split is the training split of the data set the world model learned from (a data
    set root is resolved to it); windows never cross an episode, so every goal is a frame
    the recorded actions reached from that context in k steps.
    """

    def __init__(self, path: str | os.PathLike, num_past: int, image_size: Sequence[int], action_dim: int,
                 task: TaskSettings, frame_stride: int = 1):
        from models.data.open import find_splits, open_split, split_format
        from models.data.windows import WindowDataset

        path = Path(path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"--data '{path}' does not exist (expected the world model's data set root or "
                                    "its train split)")
        if split_format(path) is None:
            path = find_splits(path)[0]  # a data set root: its training split
        self.path = path
        self.split = open_split(path, image_size=tuple(image_size))
        self.task = task
        self.windows = WindowDataset(self.split, num_past=num_past, num_future=task.goal_max_steps, source="frames",
                                     frame_stride=frame_stride)
        if self.windows.action_dim != action_dim:
            raise ValueError(f"{path}: actions are {self.windows.action_dim}-d, the world model takes {action_dim}-d")
        frame_shape = tuple(self.windows[0]["past_frames"].shape[1:])
        if frame_shape != (*image_size, 3):
            raise ValueError(f"{path}: frames are {frame_shape[0]}x{frame_shape[1]}, the world model's tokenizer "
                             f"expects {image_size[0]}x{image_size[1]}")

    @property
    def num_frames(self) -> int:
        """Frames in the split: the real data the world model was trained on."""
        return int(getattr(self.split, "num_frames", None) or len(self.split))

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """`HWMEnv` reset options: frames (P, H, W, 3) uint8, actions (P, A) float32, goal (H, W, 3) uint8."""
        window = self.windows[int(rng.integers(len(self.windows)))]
        k = int(rng.integers(self.task.goal_min_steps, self.task.goal_max_steps + 1))
        return {
            "frames": np.asarray(window["past_frames"], dtype=np.uint8),
            "actions": np.asarray(window["past_actions"], dtype=np.float32),
            "goal": np.asarray(window["future_frames"][k - 1], dtype=np.uint8),
        }
