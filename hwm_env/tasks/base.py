"""What every task shares: the readout it is scored on, the episode it starts, the `Task` interface.

A task is defined on the simulator's *state*, not on pixels, so that one definition
scores three kinds of rollouts the same way: the simulator itself (`Readout.from_sim`),
a world model whose frames a state probe reads (`Readout.from_targets`), and a planner's
imagined candidates (vectorised: every measure accepts leading batch dimensions).
Everything a measure needs must therefore be in the 25-d state and the four object
centres in the head-camera frame; hand positions and the robot-fixed base frame come
from `HeadKinematics`, which needs only the joint angles.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import numpy as np

from hwm_env.sim import layout
from hwm_env.sim.env import OBJECT_POSITION_NAMES

if TYPE_CHECKING:
    from hwm_env.sim.env import HWMSimEnv, SimState

NUM_OBJECTS = 4
HOLD_MARGIN = 1e-4  # action units: the action box around hold_action on dims a task does not control


@dataclasses.dataclass
class Readout:
    """What a frame shows of the world: from the simulator's truth or from a state probe's prediction.

    Attributes:
        state: (..., 25) measured state, `layout.STATE_NAMES` order (rad, 0-1, m/s, rad/s).
        objects: (..., 4, 3) object centres in the head-camera frame (m; x right, y up,
            z forward), `OBJECT_NAMES` order.
    Entries a task does not read may be NaN (`from_targets` fills what a probe lacks).
    """

    state: np.ndarray
    objects: np.ndarray

    def __post_init__(self):
        self.state = np.asarray(self.state, dtype=np.float64)
        self.objects = np.asarray(self.objects, dtype=np.float64)
        if self.state.shape[-1:] != (layout.STATE_DIM,):
            raise ValueError(f"Readout.state must have shape (..., {layout.STATE_DIM}), got {self.state.shape}")
        if self.objects.shape[-2:] != (NUM_OBJECTS, 3):
            raise ValueError(f"Readout.objects must have shape (..., {NUM_OBJECTS}, 3), got {self.objects.shape}")

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return np.broadcast_shapes(self.state.shape[:-1], self.objects.shape[:-2])

    @classmethod
    def from_sim(cls, env) -> "Readout":
        """The simulator's truth now: `joint_state()` and `object_positions()`."""
        env = env.unwrapped
        return cls(state=env.joint_state(), objects=env.object_positions().reshape(NUM_OBJECTS, 3))

    @classmethod
    def from_targets(cls, values, names: Sequence[str], task_name: str) -> "Readout":
        """A readout from a probe's output `values` (..., K) whose last axis is named by `names`.

        `names` may hold any of the 25 `layout.STATE_NAMES` and the 12 `OBJECT_POSITION_NAMES`,
        in any order; other names are ignored. The targets task `task_name` reads
        (`Task.required_targets`) must all be there, else ValueError naming the missing ones;
        the rest are NaN.
        """
        from hwm_env.tasks import TASKS, unknown_task_error

        if task_name not in TASKS:
            raise unknown_task_error(task_name)
        values = np.asarray(values, dtype=np.float64)
        names = list(names)
        if values.ndim < 1 or values.shape[-1] != len(names):
            raise ValueError(f"Readout.from_targets: values must have shape (..., {len(names)}) to match the "
                             f"{len(names)} names, got {values.shape}")
        missing = [name for name in TASKS[task_name].required_targets if name not in names]
        if missing:
            raise ValueError(f"task '{task_name}' needs the targets {missing}, which are not among the "
                             f"{len(names)} given names")
        column = {name: i for i, name in enumerate(names)}
        lead = values.shape[:-1]
        state = np.full((*lead, layout.STATE_DIM), np.nan)
        for i, name in enumerate(layout.STATE_NAMES):
            if name in column:
                state[..., i] = values[..., column[name]]
        objects = np.full((*lead, NUM_OBJECTS * 3), np.nan)
        for i, name in enumerate(OBJECT_POSITION_NAMES):
            if name in column:
                objects[..., i] = values[..., column[name]]
        return cls(state=state, objects=objects.reshape(*lead, NUM_OBJECTS, 3))


@dataclasses.dataclass
class TaskEpisode:
    """One episode of a task: where it starts, the context before it and what it asks for."""

    task: str
    seed: int
    start: "SimState"  # the env state where the episode starts (after settling)
    start_frame: np.ndarray  # (H, W, 3) uint8
    context_frames: np.ndarray  # (settle_steps, H, W, 3) uint8 frames before the start, ending at start_frame
    context_actions: np.ndarray  # (settle_steps, 25) float32, the action into each context frame
    hold_action: np.ndarray  # (25,) float32, the action that holds the start pose (base still)
    object_index: int | None  # the named object (look-at, reach, push), else None
    target: np.ndarray  # task-specific parameters, see each task's docstring
    goal_frame: np.ndarray | None = None  # optional goal image (aim: the image at the goal pose)


class Task:
    """A task on HWM-Sim-v0: a start distribution, a success measure, a dense reward, an oracle.

    Subclasses set the class attributes and implement `sample_episode`, `error` and
    `scripted_action`. `reward` is -error and `is_success` is error < success_threshold
    unless a task says otherwise. Measures take a `Readout` with any leading batch
    dimensions and return arrays of that shape.
    """

    name: str = ""
    controlled: tuple[int, ...] = ()  # action indices the task's planner/policy moves
    success_threshold: float = 0.0
    max_episode_steps: int = 48
    settle_steps: int = 8  # frames the start pose is held before the episode starts (the context)
    required_targets: tuple[str, ...] = ()  # what `error`/`reward` read of a Readout (probe targets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # ------------------------------------------------------------------ interface
    def sample_episode(self, env, seed: int) -> TaskEpisode:
        """An episode drawn deterministically from `seed`; leaves `env` at `episode.start`."""
        raise NotImplementedError

    def error(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        """The success measure (rad or m), shape readout.batch_shape."""
        raise NotImplementedError

    def reward(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        """Dense reward, higher is better: -error by default."""
        return -self.error(readout, episode)

    def is_success(self, readout: Readout, episode: TaskEpisode) -> np.ndarray:
        return self.error(readout, episode) < self.success_threshold

    def action_box(self, episode: TaskEpisode) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) float32 (25,): [-1, 1] on `controlled`, hold_action +- 1e-4 elsewhere."""
        low = np.clip(episode.hold_action - HOLD_MARGIN, -1.0, 1.0).astype(np.float32)
        high = np.clip(episode.hold_action + HOLD_MARGIN, -1.0, 1.0).astype(np.float32)
        low[list(self.controlled)] = -1.0
        high[list(self.controlled)] = 1.0
        return low, high

    def scripted_action(self, env, episode: TaskEpisode) -> np.ndarray:
        """(25,) float32: a privileged controller's action, reading the simulator's truth."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared by the tasks
    @staticmethod
    def _scene_rng(seed: int) -> np.random.Generator:
        """The generator `reset(seed=seed)` uses, so a task's first scene is the task-free env's."""
        from gymnasium.utils import seeding

        return seeding.np_random(int(seed))[0]

    @staticmethod
    def _hold_action(env: "HWMSimEnv") -> np.ndarray:
        """The action that holds the current pose with the base still."""
        action = env.action_from_state(env.joint_state())
        action[layout.BASE_SLICE] = 0.0
        return action

    def _settle(self, env: "HWMSimEnv", hold_action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hold `hold_action` for settle_steps frames: the context (frames, actions) before the start.

        The step counter restarts at 0 afterwards, so `elapsed_steps` counts episode steps.
        """
        frames = []
        for _ in range(self.settle_steps):
            env.advance(hold_action)
            frames.append(env.render_frame())
        frames = np.stack(frames)
        env.elapsed_steps = 0
        actions = np.repeat(hold_action[None].astype(np.float32), self.settle_steps, axis=0)
        return frames, actions

    def _settle_named_object(self, env: "HWMSimEnv", index: int, acceptable) -> tuple | None:
        """Settle the start pose: (hold_action, frames, actions), or None to draw again when the named
        object moved > 1 cm while settling (a reset can put a hand inside an object and throw it) or
        `acceptable()` no longer holds after settling."""
        placed = env.object_poses()[index, :3].copy()
        hold = self._hold_action(env)
        frames, actions = self._settle(env, hold)
        if np.linalg.norm(env.object_poses()[index, :3] - placed) > 0.01 or not acceptable():
            return None
        return hold, frames, actions

    def _episode(self, env: "HWMSimEnv", seed: int, frames: np.ndarray, actions: np.ndarray,
                 hold_action: np.ndarray, object_index: int | None, target: np.ndarray,
                 goal_frame: np.ndarray | None = None) -> TaskEpisode:
        return TaskEpisode(task=self.name, seed=int(seed), start=env.get_state(), start_frame=frames[-1].copy(),
                           context_frames=frames, context_actions=actions,
                           hold_action=hold_action.astype(np.float32), object_index=object_index,
                           target=np.asarray(target, dtype=np.float64), goal_frame=goal_frame)

    def _with_controlled(self, episode: TaskEpisode, values: np.ndarray) -> np.ndarray:
        """hold_action with the controlled entries taken from `values` (25,), clipped to the box."""
        low, high = self.action_box(episode)
        action = episode.hold_action.astype(np.float64).copy()
        action[list(self.controlled)] = np.asarray(values, dtype=np.float64)[list(self.controlled)]
        return np.clip(action, low, high).astype(np.float32)


def angle_from_axis(points: np.ndarray) -> np.ndarray:
    """Angle (rad) between camera-frame points (..., 3) and the optical axis (+z)."""
    points = np.asarray(points, dtype=np.float64)
    lateral = np.linalg.norm(points[..., :2], axis=-1)
    return np.arctan2(lateral, points[..., 2])
