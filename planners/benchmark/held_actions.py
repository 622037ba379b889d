"""Held actions (DINO-WM's frameskip): one planned action lasts several frames in env, dynamics and context."""
from __future__ import annotations

import numpy as np


def action_repeat_env(env, repeat: int):
    """`env` whose step holds the action for `repeat` frames; info["frames"] has all of them."""
    import gymnasium as gym

    class ActionRepeat(gym.Wrapper):
        def step(self, action):
            frames = []
            for _ in range(repeat):
                observation, reward, terminated, truncated, info = self.env.step(action)
                frames.append(observation)
                if terminated or truncated:
                    break
            return observation, reward, terminated, truncated, {**info, "frames": np.stack(frames)}

    return ActionRepeat(env)


class HeldActionDynamics:
    """Planner dynamics over held actions: each of the H planned actions lasts `repeat` model steps.

    rollout(state, actions (N, H, A)) -> the frame or latent at the end of each hold, (N, H, ...).
    A model step is one frame for the simulator and `frame_stride` frames for a world model.
    """

    def __init__(self, dynamics, repeat: int):
        self.dynamics = dynamics
        self.repeat = int(repeat)
        self.action_dim = dynamics.action_dim

    def rollout(self, state, actions):
        held = actions.repeat_interleave(self.repeat, dim=1)  # (N, H * repeat, A)
        return self.dynamics.rollout(state, held)[:, self.repeat - 1 :: self.repeat]


class HeldActionContext:
    """Feeds the frames of a held action to a `WorldModelContext` (one MPC step = `repeat` frames).

    A model with frame stride k sees every k-th frame (the last of each k): the frames its
    latents stand for. The action into each is the held action, the mean over its k frames.
    """

    def __init__(self, context, frame_stride: int = 1):
        self.context = context
        self.frame_stride = int(frame_stride)

    def __call__(self, env, observation, info: dict):
        action = info.get("executed_action")
        if action is None:
            return self.context(env, observation, info)
        frames = info["frames"]
        if len(frames) % self.frame_stride:
            raise ValueError(f"a hold of {len(frames)} frames is not a whole number of model steps "
                             f"(frame stride {self.frame_stride})")
        for frame in frames[self.frame_stride - 1 :: self.frame_stride]:
            state = self.context(env, frame, {"executed_action": action})
        return state
