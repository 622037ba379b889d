"""What a policy sees, the same in imagination and in the simulator: a frame read by the state probe, the task, its commands.

| part | size | what |
|---|---|---|
| `probe` | K | the state probe's reading of the current frame (z-units: minus the probe's training mean, over its std) |
| `task` | 4 + T | one-hot of the named object (zeros for `aim`), then the task episode's `target` (T numbers, see the task's docstring: aim's goal view angles, reach's object centre and hand) |
| `commands` | 2 C | the current and the start command of the C controlled entries (action units) |

Why a probe reading and not latents or pixels: the frame is the only thing both worlds
share, the probe is the instrument the task reward of the world-model envs is read with,
and 37 numbers learn in thousands of PPO steps where a CNN on pixels needs millions (the
compute of 2 CPU cores). The same probe reads simulator frames and predicted frames, so a
policy meets no other input in the real world than in imagination. The task part is what
the task asks for (a goal-conditioned policy), constant through an episode.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

NUM_OBJECTS = 4


class TaskObservation:
    """Builds the batched observation of the table above for one task."""

    def __init__(self, task, probe, commander, target_size: int):
        self.task, self.probe, self.commander = task, probe, commander
        self.mean = np.asarray(probe.target_mean, np.float32)
        self.std = np.maximum(np.asarray(probe.target_std, np.float32), 1e-6)
        self.target_size = int(target_size)
        probe_size, task_size = len(probe.target_names), NUM_OBJECTS + self.target_size
        self.slices = {
            "probe": slice(0, probe_size),
            "task": slice(probe_size, probe_size + task_size),
            "commands": slice(probe_size + task_size, probe_size + task_size + 2 * len(commander.dims)),
        }
        self.size = self.slices["commands"].stop
        self.space = spaces.Box(-np.inf, np.inf, (self.size,), np.float32)

    @classmethod
    def for_episode(cls, task, probe, commander, episode) -> "TaskObservation":
        """Sized by an example episode of the task (its target's length)."""
        return cls(task, probe, commander, np.asarray(episode.target).size)

    def task_part(self, episodes) -> np.ndarray:
        """(N, 4 + T): one-hot named object and target of each task episode."""
        part = np.zeros((len(episodes), NUM_OBJECTS + self.target_size), np.float32)
        for row, episode in enumerate(episodes):
            if episode.task != self.task.name:
                raise ValueError(f"a '{self.task.name}' policy observation got a '{episode.task}' episode")
            if episode.object_index is not None:
                part[row, int(episode.object_index)] = 1.0
            target = np.asarray(episode.target, np.float32).ravel()
            if target.size != self.target_size:
                raise ValueError(f"task '{self.task.name}': episode target has {target.size} numbers, the "
                                 f"observation was built for {self.target_size}")
            part[row, NUM_OBJECTS:] = target
        return part

    def read(self, frames: np.ndarray) -> np.ndarray:
        """uint8 frames (N, H, W, 3) -> the probe's readings (N, K), one batched call (what `build` takes)."""
        return self.probe.predict(frames)

    def build(self, readings: np.ndarray, episodes, commands: np.ndarray) -> np.ndarray:
        """Probe readings (N, K) of the current frames, their task episodes, `Commander` states (N, 2A) -> (N, size).

        Readings, not frames: a world-model task env has already read its frames for the reward
        (`ImaginationBatch.probe_readings`), so its observation costs no second probe call.
        """
        z = (np.asarray(readings, np.float32) - self.mean) / self.std
        return np.concatenate([z, self.task_part(episodes), self.commander.controlled_commands(commands)],
                              axis=1).astype(np.float32)

    def part(self, observations: np.ndarray, name: str) -> np.ndarray:
        """One part (`probe`, `task`, `commands`) of batched observations."""
        return np.asarray(observations)[:, self.slices[name]]
