"""The experiment's settings: how a policy acts, PPO's hyper-parameters, the whole run (`results.json` records them)."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from planners.benchmark import Protocol

FAMILIES = ("flow", "masked")
ACTION_MODES = ("offset", "delta")
ROWS = ("imagination", "sim-budget", "sim-unlimited", "random", "hold", "scripted")
FAMILY_LABELS = {"flow": "Flow-HWM", "masked": "Masked-HWM"}


@dataclasses.dataclass
class ControlSettings:
    """How policy outputs u in [-1, 1] move the task's controlled joints, identical in imagination and the simulator."""

    action_mode: str = "offset"  # "offset": target = start + max_offset * u; "delta": target += max_delta * u
    max_offset: float = 1.0  # action units: aim goals move a view joint up to 0.3 rad, 1.0 unit of hip roll
    max_delta: float = 0.1  # largest change of a commanded entry per step in "delta" mode (action units)

    def __post_init__(self):
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {list(ACTION_MODES)}, got '{self.action_mode}'")
        if not 0 < self.max_offset <= 2:
            raise ValueError(f"max_offset must be in (0, 2] action units, got {self.max_offset}")
        if not 0 < self.max_delta <= 2:
            raise ValueError(f"max_delta must be in (0, 2] action units, got {self.max_delta}")


@dataclasses.dataclass
class PPOSettings:
    """stable-baselines3 PPO hyper-parameters, shared by every trained row."""

    n_steps: int = 16  # steps per env per rollout: one training episode (64 imagined envs: 1,024 per update)
    batch_size: int = 256
    n_epochs: int = 5
    learning_rate: float = 3e-4
    gamma: float = 0.95  # looks ~20 steps ahead; the value is bootstrapped where a short episode is truncated
    gae_lambda: float = 0.9
    clip_range: float = 0.2
    ent_coef: float = 0.0
    log_std_init: float = -1.0  # initial std 0.37 of u: exploration near the start pose
    hidden: int = 256  # two hidden layers of this width, actor and critic


QUICK_PPO = {"n_steps": 4, "batch_size": 8, "n_epochs": 1, "hidden": 16}
QUICK_STEPS = {"imagination_steps": 32, "real_budget": 200, "upper_bound_steps": 64, "num_envs": 2, "sim_envs": 2,
               "pool_episodes": 2, "horizon": 3, "snapshots": 2}


@dataclasses.dataclass
class PolicyExperiment:
    """Everything one run of `hwm train policy --task T` needs; `results.json` records it."""

    data: str  # the data set the world model was trained on: its frame count is part of the real budget
    task: str = "aim"
    model: str = "flow"
    checkpoint: str | None = None  # default: the shipped `<model>-default`
    probe: str = "probe-default"  # reads the reward (imagination) and the observation (both worlds) off frames
    out: str | None = None  # default runs/policy-<task>-<model>
    rows: tuple[str, ...] = ROWS
    imagination_steps: int = 100_000  # imagined env steps of PPO
    horizon: int = 16  # steps per training episode (both worlds); the value is bootstrapped at truncation
    pool_episodes: int = 256  # real task starts (policy-training domain) imagined episodes begin from
    real_budget: int | None = None  # sim-budget row; default: the data's training frames + the pool's frames
    upper_bound_steps: int = 1_000_000  # simulator steps of the sim-unlimited row
    num_envs: int = 64  # imagined episodes per batched model call
    sim_envs: int = 16  # 256 steps per PPO update
    sampling_steps: int | None = None  # flow / MaskGIT steps per imagined frame (None: the checkpoint's default)
    precision: str = "auto"  # world-model inference: models/precision.py
    snapshots: int = 4  # PPO checkpoints saved along the imagination run (for `hwm bench policies`)
    seed: int = 0  # PPO's seed and the policy-training domain's stream
    control: ControlSettings = dataclasses.field(default_factory=ControlSettings)
    ppo: PPOSettings = dataclasses.field(default_factory=PPOSettings)
    # scoring: `episodes` task episodes of the policy-scoring seed domain, the task's full length
    scoring: "Protocol" = dataclasses.field(default_factory=lambda: scoring_protocol("aim"))
    device: str = "auto"
    wandb: bool = False
    wandb_project: str = "hwm-policy"
    progress: bool = True

    def __post_init__(self):
        from hwm_env.tasks import make_task

        make_task(self.task)  # unknown names list the known ones
        if self.model not in FAMILIES:
            raise ValueError(f"model must be one of {list(FAMILIES)}, got '{self.model}'")
        if self.scoring.task != self.task:
            self.scoring = dataclasses.replace(self.scoring, task=self.task, steps=None)
        self.rows = tuple(self.rows)
        unknown = [row for row in self.rows if row not in ROWS]
        if not self.rows or unknown or len(set(self.rows)) != len(self.rows):
            raise ValueError(f"rows must be distinct names from {list(ROWS)}, got {list(self.rows)}")
        for name in ("imagination_steps", "upper_bound_steps", "num_envs", "sim_envs", "horizon", "pool_episodes",
                     "snapshots"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.sampling_steps is not None and self.sampling_steps < 1:
            raise ValueError(f"sampling-steps must be >= 1, got {self.sampling_steps}")
        if self.real_budget is not None and self.real_budget < 1:
            raise ValueError(f"real-budget must be >= 1 frame, got {self.real_budget}")
        one_update = self.ppo.n_steps * self.num_envs
        if "imagination" in self.rows and self.imagination_steps < one_update:
            raise ValueError(f"imagination-steps ({self.imagination_steps}) is below one PPO update "
                             f"(n_steps {self.ppo.n_steps} x num-envs {self.num_envs} = {one_update})")
        if "sim-unlimited" in self.rows and self.upper_bound_steps < self.ppo.n_steps * self.sim_envs:
            raise ValueError(f"upper-bound-steps ({self.upper_bound_steps}) is below one PPO update "
                             f"(n_steps {self.ppo.n_steps} x sim-envs {self.sim_envs})")
        if self.out is None:
            self.out = f"runs/policy-{self.task}-{self.model}"

    @property
    def checkpoint_name(self) -> str:
        return self.checkpoint or f"{self.model}-default"


def scoring_protocol(task: str, episodes: int = 100) -> "Protocol":
    """The scoring episodes: the task's full length, `episodes` of the policy-scoring domain's test set."""
    from planners.benchmark import Protocol  # imported on use: building the CLI parser stays light

    return Protocol(task=task, episodes=episodes)


def quick(experiment: PolicyExperiment) -> PolicyExperiment:
    """Tiny steps everywhere (the test suite's end-to-end run); explicit budgets are kept if smaller."""
    from planners.benchmark import QUICK_PROTOCOL

    steps = {key: min(value, getattr(experiment, key) or value) for key, value in QUICK_STEPS.items()}
    return dataclasses.replace(
        experiment, **steps,
        ppo=dataclasses.replace(experiment.ppo, **QUICK_PPO),
        scoring=dataclasses.replace(experiment.scoring, **QUICK_PROTOCOL),
    )
