"""Initial contexts for the world-model envs: P frames and the P actions that led into them.

A world model cannot start from nothing: `reset` needs the last P observed frames and,
on the same clock, the action that led INTO each of them (`actions[i]` drove frame i-1 ->
frame i). Contexts come from three places:

| source | how | seeded by |
|---|---|---|
| `"sim"` (default) | reset `HWM-Sim-v0`, drive P steps with the exploration policy, keep the P frames reached | a seed drawn from the env's `np_random` |
| a data folder | a random window of an `hwm-v1` split (a data root uses its `train` split) | an index drawn from `np_random` |
| `options={"frames": (P,H,W,3) uint8, "actions": (P,A)}` | given by the caller | - |
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

SEED_LIMIT = 2**31 - 1  # MuJoCo/gymnasium seeds and exploration seeds fit in int32


@dataclass
class Context:
    """P frames and the actions into them, as the env and the model see them."""

    frames: np.ndarray  # (P, H, W, 3) uint8
    actions: np.ndarray  # (P, A) float32; actions[i] led into frames[i]
    task_episode: Any = None  # the hwm_env.tasks.TaskEpisode the context starts, for task envs


def check_context(frames, actions, num_past: int, image_size: tuple[int, int], action_dim: int) -> Context:
    """Validate a caller's context (reset options) and return contiguous numpy copies."""
    height, width = image_size
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"options['frames'] must be uint8 RGB, got dtype {frames.dtype}")
    if frames.shape != (num_past, height, width, 3):
        raise ValueError(
            f"options['frames'] must have shape ({num_past}, {height}, {width}, 3) "
            f"(the model's {num_past} context frames), got {frames.shape}"
        )
    actions = np.asarray(actions)
    if actions.dtype.kind not in "fiu" or actions.dtype == np.bool_:
        raise ValueError(f"options['actions'] must be real numbers, got dtype {actions.dtype}")
    if actions.shape != (num_past, action_dim):
        raise ValueError(
            f"options['actions'] must have shape ({num_past}, {action_dim}) (the actions into the "
            f"{num_past} context frames), got {actions.shape}"
        )
    actions = actions.astype(np.float32)
    if not np.isfinite(actions).all():
        raise ValueError("options['actions'] contains NaN or inf")
    return Context(frames=frames.copy(), actions=actions)


def drive_sim(sim, act: Callable[[], np.ndarray], num_frames: int, frame_stride: int = 1) -> Context:
    """Drive an already-reset simulator with `act()`; `num_frames` frames, `frame_stride` steps apart.

    Each kept frame comes with the mean of the `frame_stride` actions that led into it (the
    data's action pooling). The demo keeps driving the same simulator afterwards, so the
    world model and the simulator start from exactly the same context.
    """
    frames, actions = [], []
    for _ in range(num_frames):
        frame, action = sim_step(sim, act, frame_stride)
        frames.append(frame)
        actions.append(action)
    return Context(frames=np.stack(frames), actions=np.stack(actions))


def strided_context(frames: np.ndarray, actions: np.ndarray, num_past: int, frame_stride: int):
    """The last `num_past` of every `frame_stride`-th frame, ending at the last one, with their actions.

    Where the frames run out, the earliest repeats: task and planning contexts are frames of a
    held start pose, so an earlier frame would show the same pose (the action into it is the hold).
    """
    picks = np.arange(len(frames) - 1, -1, -int(frame_stride))[:num_past][::-1]
    picks = np.concatenate([np.full(num_past - len(picks), picks[0]), picks])
    return frames[picks], actions[picks]


def sim_step(sim, act: Callable[[], np.ndarray], frame_stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """`frame_stride` simulator steps: the frame reached and the mean action into it."""
    taken = []
    for _ in range(frame_stride):
        action = np.asarray(act(), dtype=np.float32)
        observation, *_ = sim.step(action)
        taken.append(action)
    return np.asarray(observation, dtype=np.uint8), np.mean(taken, axis=0).astype(np.float32)


def exploration_policy(sim, seed: int) -> Callable[[], np.ndarray]:
    """`act()` of the simulator's scripted exploration policy, started from the sim's current (just reset) state."""
    from hwm_env.sim.exploration import ExplorationPolicy

    return ExplorationPolicy(sim, seed=seed).act


class SimContextSource:
    """Contexts from the reference simulator at the tokenizer's resolution (one simulator, reused)."""

    def __init__(self, num_past: int, image_size: tuple[int, int], action_dim: int, frame_stride: int = 1):
        height, width = image_size
        if height != width:
            raise ValueError(f"the reference simulator renders square frames; the tokenizer expects {height}x{width}")
        self.num_past = num_past
        self.frame_stride = frame_stride
        self.resolution = height
        self.action_dim = action_dim
        self._sim = None

    @property
    def sim(self):
        if self._sim is None:
            from hwm_env.sim.env import HWMSimEnv

            self._sim = HWMSimEnv(resolution=self.resolution)
            sim_dim = self._sim.action_space.shape[0]
            if sim_dim != self.action_dim:
                raise ValueError(
                    f"context_source='sim': the simulator has {sim_dim}-d actions but the model takes "
                    f"{self.action_dim}-d actions; pass a data folder as context_source instead"
                )
        return self._sim

    def sample(self, rng: np.random.Generator) -> Context:
        seed = int(rng.integers(SEED_LIMIT))
        self.sim.reset(seed=seed)
        return drive_sim(self.sim, exploration_policy(self.sim, seed), self.num_past, self.frame_stride)

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None


class DatasetContextSource:
    """Contexts from random windows of a data set split (frames, so any tokenizer fits)."""

    def __init__(
        self, path: str | os.PathLike, num_past: int, image_size: tuple[int, int], action_dim: int, frame_stride: int = 1
    ):
        from models.data.open import find_splits, open_split, split_format
        from models.data.windows import WindowDataset

        from models.paths import require_folder

        path = require_folder(path, "context_source data set (a split or a data set root)")
        if split_format(path) is None:
            path = find_splits(path)[0]  # a data set root: contexts from its training split
        split = open_split(path, image_size=tuple(image_size))  # 1X raw video is resized on read
        # One future frame is required by the window definition; only the past part is used.
        self.windows = WindowDataset(split, num_past=num_past, num_future=1, source="frames", frame_stride=frame_stride)
        if self.windows.action_dim != action_dim:
            raise ValueError(f"{path}: actions are {self.windows.action_dim}-d, the model takes {action_dim}-d actions")
        frame_shape = tuple(self.windows[0]["past_frames"].shape[1:])
        if frame_shape != (*image_size, 3):
            raise ValueError(
                f"{path}: frames are {frame_shape[0]}x{frame_shape[1]} but the model's tokenizer expects "
                f"{image_size[0]}x{image_size[1]}"
            )
        self.path = path

    def sample(self, rng: np.random.Generator) -> Context:
        window = self.windows[int(rng.integers(len(self.windows)))]
        frames = np.asarray(window["past_frames"], dtype=np.uint8)  # (P, H, W, 3)
        actions = np.asarray(window["past_actions"], dtype=np.float32)  # (P, A), the actions into those frames
        return Context(frames=frames, actions=actions)

    def close(self) -> None:
        pass


def make_context_source(context_source, num_past: int, image_size: tuple[int, int], action_dim: int,
                        frame_stride: int = 1):
    """`"sim"` -> SimContextSource; a path -> DatasetContextSource (contexts at the model's frame stride)."""
    if isinstance(context_source, str) and context_source == "sim":
        return SimContextSource(num_past, image_size, action_dim, frame_stride)
    if isinstance(context_source, (str, os.PathLike)):
        return DatasetContextSource(context_source, num_past, image_size, action_dim, frame_stride)
    raise ValueError(f"context_source must be 'sim' or a path to a data set, got {context_source!r}")
