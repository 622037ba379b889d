"""The simulator itself as planner dynamics: the oracle row of the planning benchmark.

`SimDynamics` has the shape of a world model seen by a planner: from one state, roll out
N candidate action sequences and return what each produces. Every candidate starts
from the same `SimState` snapshot (restored between candidates), and the env is left
in the state it had before the call, so the same env can plan and act.
"""
from __future__ import annotations

import numpy as np
import torch

from hwm_env.sim import layout
from hwm_env.sim.env import HWMSimEnv, SimState


class SimDynamics:
    """Exact rollouts in an `HWMSimEnv`: `rollout(state, actions (N, H, 25))` -> frames.

    `rollout` returns uint8 frames (N, H, res, res, 3): frame h is the image after action
    h. `rollout_states` returns the measured 25-d states (N, H, 25) float32 without
    rendering (faster). `rollout_frames_and_states` returns both from one pass.
    """

    def __init__(self, env):
        self.env: HWMSimEnv = env.unwrapped
        if not isinstance(self.env, HWMSimEnv):
            raise ValueError(f"SimDynamics needs an HWMSimEnv, got {type(self.env).__name__}")
        self.action_dim = layout.ACTION_DIM
        self.resolution = self.env.resolution

    def rollout(self, state: SimState, actions) -> torch.Tensor:
        return self._rollout(state, actions, render=True)[0]

    def rollout_states(self, state: SimState, actions) -> torch.Tensor:
        return self._rollout(state, actions, render=False)[1]

    def rollout_frames_and_states(self, state: SimState, actions) -> tuple[torch.Tensor, torch.Tensor]:
        return self._rollout(state, actions, render=True)

    def _rollout(self, state: SimState, actions, render: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        if not isinstance(state, SimState):
            raise ValueError(f"SimDynamics: state must be a SimState from env.get_state(), got {type(state).__name__}")
        actions = self._check_actions(actions)
        num_candidates, horizon, _ = actions.shape
        res = self.resolution
        frames = np.zeros((num_candidates, horizon, res, res, 3), np.uint8) if render else None
        states = np.zeros((num_candidates, horizon, layout.STATE_DIM), np.float32)
        env = self.env
        saved = env.get_state()
        try:
            for n in range(num_candidates):
                env.set_state(state)
                for h in range(horizon):
                    if render:
                        frames[n, h] = env.step(actions[n, h])[0]
                    else:
                        env.advance(actions[n, h])
                    states[n, h] = env.joint_state()
        finally:
            env.set_state(saved)
        return (None if frames is None else torch.from_numpy(frames)), torch.from_numpy(states)

    def _check_actions(self, actions) -> np.ndarray:
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().to("cpu", torch.float64).numpy()
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 3 or actions.shape[2] != self.action_dim or 0 in actions.shape:
            raise ValueError(
                f"SimDynamics: actions must have shape (N, H, {self.action_dim}) with N, H >= 1, got {actions.shape}"
            )
        if not np.isfinite(actions).all():
            raise ValueError("SimDynamics: actions contain NaN or inf")
        return actions
