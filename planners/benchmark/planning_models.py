"""What a planning row plans with: a world model (latent rollouts) or the simulator itself (the oracle)."""
from __future__ import annotations

import numpy as np

from planners.benchmark.episodes import Episode
from hwm_env.context import strided_context
from planners.benchmark.held_actions import HeldActionContext
from planners.benchmark.protocol import Protocol


def goal_cost(tokenizer, episode: Episode, protocol: Protocol, task=None, probe=None):
    """The protocol's cost for one episode: latent or blurred image distance to the goal image, or
    minus the task's reward read by the state probe (`probe`, needed for `cost="probe"`)."""
    from planners.costs import ImageGoalCost, LatentGoalCost
    from planners.task_cost import ProbeTaskCost

    if protocol.cost == "probe":
        if probe is None or task is None:
            raise ValueError("the probe cost needs the task and a state probe")
        return ProbeTaskCost(probe, task, episode.task_episode, tokenizer, reduce=protocol.cost_reduce)
    if protocol.cost == "image":
        return ImageGoalCost(episode.goal_frame, tokenizer, blur_sigma=protocol.cost_blur, reduce=protocol.cost_reduce)
    return LatentGoalCost.from_image(tokenizer, episode.goal_frame, reduce=protocol.cost_reduce)


class FinalFrameCost:
    """A `reduce="final"` goal cost on frames, given only the last frame of each candidate.

    The oracle's trajectories are rendered frames; the final-step distance needs only the
    last one, so this gives the same number for 1/H of the encoder work.
    """

    def __init__(self, cost):
        self.cost = cost

    def __call__(self, trajectory):
        return self.cost(trajectory[:, -1:])  # (N, 1, ...) -> (N,)


# The planning sampler: one flow / MaskGIT step, greedy MaskGIT. A plan looks one held action (4
# frames) ahead of real frames, re-encoded at every replan, so the long-rollout sampler the
# checkpoints ship with (README, Evaluation) buys nothing here and would double every plan's time.
PLANNING_SAMPLING_STEPS = 1
PLANNING_TEMPERATURE = 0.0


class WorldModelPlanning:
    """Plans in a Flow-HWM or Masked-HWM checkpoint: latent rollouts from the encoded context."""

    def __init__(self, kind: str, checkpoint, device: str = "cpu", sampling_steps: int | None = None,
                 precision: str = "auto"):
        from models.checkpoint import frame_stride, read_config, resolve_checkpoint
        from planners.dynamics import load_world_model_dynamics

        self.kind = kind
        self.checkpoint = str(resolve_checkpoint(checkpoint))
        config = read_config(self.checkpoint)
        family = config.get("family")
        if family != kind:
            raise ValueError(f"{self.checkpoint}: is a '{family}' checkpoint, the {kind} rows need a '{kind}' one")
        if sampling_steps is not None and int(sampling_steps) < 1:
            raise ValueError(f"{kind} sampling steps must be >= 1, got {sampling_steps}")
        dynamics, self.tokenizer = load_world_model_dynamics(self.checkpoint, device=device)
        if dynamics.action_dim != 25:
            raise ValueError(f"{self.checkpoint}: the model takes {dynamics.action_dim}-d actions, HWM-Sim-v0 has 25")
        self.model = dynamics.model
        self.num_past = dynamics.num_past
        # Data frames per latent frame: a stride-k model predicts the frame k ahead in one step.
        self.frame_stride = frame_stride(config, self.checkpoint)
        self.sampling_steps = PLANNING_SAMPLING_STEPS if sampling_steps is None else int(sampling_steps)
        self.temperature = PLANNING_TEMPERATURE if kind == "masked" else None
        self.precision = precision  # models.precision: "auto" resolves per call for the batch of candidates

    def describe(self) -> dict:
        return {"checkpoint": self.checkpoint, "sampling_steps": self.sampling_steps, "temperature": self.temperature,
                "cfg_scale": getattr(self.model.config, "cfg_scale", None),
                "num_past": self.num_past, "frame_stride": self.frame_stride, "precision": self.precision,
                "cost_tokenizer": f"{self.checkpoint}/tokenizer"}

    def model_steps_per_hold(self, action_repeat: int) -> int:
        """Model steps that span one held action of `action_repeat` frames."""
        if action_repeat % self.frame_stride:
            raise ValueError(f"{self.checkpoint}: frame stride {self.frame_stride} does not divide the "
                             f"action repeat {action_repeat}; choose --action-repeat as a multiple of it")
        return action_repeat // self.frame_stride

    def start_context(self, frames: np.ndarray, actions: np.ndarray):
        """A `WorldModelContext` started from still frames ending at the current observation."""
        from planners.dynamics import WorldModelContext

        if frames.shape[0] < self.num_past:
            raise ValueError(
                f"{self.checkpoint}: the model needs {self.num_past} context frames but the protocol settles "
                f"only {frames.shape[0]}; raise --settle-steps"
            )
        context = WorldModelContext(self.tokenizer, self.num_past)
        context.start(*strided_context(frames, actions, self.num_past, self.frame_stride))
        return context

    def for_episode(self, episode: Episode, seed: int, protocol: Protocol, task=None, probe=None):
        """(dynamics, cost, state_fn) over model steps; the context comes from the settle frames."""
        from planners.dynamics import WorldModelDynamics

        self.model_steps_per_hold(protocol.action_repeat)
        dynamics = WorldModelDynamics(self.model, steps=self.sampling_steps, temperature=self.temperature, seed=seed,
                                      precision=self.precision)
        context = self.start_context(episode.context_frames, episode.context_actions)
        return (dynamics, goal_cost(self.tokenizer, episode, protocol, task, probe),
                HeldActionContext(context, self.frame_stride))

    def close(self) -> None:
        pass


class OraclePlanning:
    """Plans with the simulator itself (a second HWMSimEnv restored to the executing env's state)."""

    def __init__(self, tokenizer, tokenizer_source: str, resolution: int, control_hz: float):
        from hwm_env.sim.dynamics import SimDynamics
        from hwm_env.sim.env import HWMSimEnv

        self.tokenizer = tokenizer
        self.tokenizer_source = tokenizer_source
        self.model_env = HWMSimEnv(resolution=resolution, control_hz=control_hz)
        self.dynamics = SimDynamics(self.model_env)

    def describe(self) -> dict:
        return {"checkpoint": None, "cost_tokenizer": self.tokenizer_source}

    def model_steps_per_hold(self, action_repeat: int) -> int:
        return action_repeat  # the simulator steps one frame at a time

    def for_episode(self, episode: Episode, seed: int, protocol: Protocol, task=None, probe=None):
        cost = goal_cost(self.tokenizer, episode, protocol, task, probe)
        cost = FinalFrameCost(cost) if protocol.cost_reduce == "final" else cost
        return self.dynamics, cost, lambda env, _observation, _info: env.unwrapped.get_state()

    def close(self) -> None:
        self.model_env.close()
