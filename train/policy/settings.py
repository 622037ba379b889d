"""The experiment's settings: the task, PPO's hyper-parameters, the whole run (`results.json` records them)."""
from __future__ import annotations

import dataclasses

from planners.benchmark import QUICK_PROTOCOL, Protocol

FAMILIES = ("flow", "masked")
POLICIES = ("mlp", "cnn")
CONTROLS = ("goal-joints", "all")
ACTION_MODES = ("offset", "delta")
ROWS = ("imagination", "sim-budget", "sim-unlimited", "random", "hold")
SB3_POLICY = {"mlp": "MlpPolicy", "cnn": "MultiInputPolicy"}
POLICY_LABELS = {"mlp": "PPO, MLP on latents", "cnn": "PPO, CNN on frames"}
FAMILY_LABELS = {"flow": "Flow-HWM", "masked": "Masked-HWM"}


@dataclasses.dataclass
class TaskSettings:
    """The goal-reaching task, identical in imagination and in the simulator."""

    horizon: int = 24  # steps per training episode (truncation)
    goal_min_steps: int = 6  # the goal is the frame k in [goal_min_steps, goal_max_steps] steps after the start
    goal_max_steps: int = 18
    action_mode: str = "offset"  # "offset": u sets target = start + max_offset * u; "delta": target += max_delta * u
    max_offset: float = 1.0  # action units; aim goals move a view joint up to 0.3 rad, 1.0 unit of hip roll
    max_delta: float = 0.1  # largest change of a commanded action entry per step (action units)
    control: str = "goal-joints"  # entries the policy moves: the benchmark's goal joints, or "all"

    def __post_init__(self):
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {list(ACTION_MODES)}, got '{self.action_mode}'")
        if not 0 < self.max_offset <= 2:
            raise ValueError(f"max_offset must be in (0, 2] action units, got {self.max_offset}")
        if self.control not in CONTROLS:
            raise ValueError(f"control must be one of {list(CONTROLS)}, got '{self.control}'")
        if not 1 <= self.goal_min_steps <= self.goal_max_steps:
            raise ValueError(
                f"goal steps must satisfy 1 <= min <= max, got {self.goal_min_steps}..{self.goal_max_steps}")
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1 step, got {self.horizon}")
        if not 0 < self.max_delta <= 2:
            raise ValueError(f"max_delta must be in (0, 2] action units, got {self.max_delta}")


@dataclasses.dataclass
class PPOSettings:
    """stable-baselines3 PPO hyper-parameters, shared by every trained row."""

    n_steps: int = 64  # steps per env per rollout
    batch_size: int = 256
    n_epochs: int = 5
    learning_rate: float = 3e-4
    gamma: float = 0.95  # looks ~20 steps ahead: about one episode
    gae_lambda: float = 0.9
    clip_range: float = 0.2
    ent_coef: float = 0.0
    log_std_init: float = -1.0  # initial std 0.37 of u: exploration near the start pose
    hidden: int = 256  # two hidden layers of this width, actor and critic


QUICK_TASK = {"horizon": 4, "goal_min_steps": 1, "goal_max_steps": 3}
QUICK_PPO = {"n_steps": 8, "batch_size": 8, "n_epochs": 1, "hidden": 16}
QUICK_STEPS = {"imagination_steps": 32, "real_budget": 48, "upper_bound_steps": 64, "num_envs": 2, "sim_envs": 2}


@dataclasses.dataclass
class PolicyExperiment:
    """Everything one run of the script needs; `results.json` records it."""

    data: str  # the data set the world model was trained on (root or train split)
    model: str = "flow"
    checkpoint: str | None = None  # default: the shipped `<model>-default`
    out: str = "runs/policy-flow"  # runs/policy-<model>, as `hwm train policy` names it
    policies: tuple[str, ...] = ("mlp",)  # imagination rows; the sim rows use the first
    rows: tuple[str, ...] = ROWS
    imagination_steps: int = 60_000  # imagined env steps for PPO
    real_budget: int | None = None  # default: the data set's training frames
    upper_bound_steps: int = 100_000  # simulator frames for the unlimited row
    num_envs: int = 16  # imagined episodes per batched model call
    sampling_steps: int | None = None  # flow / MaskGIT steps per imagined frame (None: the checkpoint's default)
    sim_envs: int = 8
    seed: int = 0  # PPO and training episodes
    task: TaskSettings = dataclasses.field(default_factory=TaskSettings)
    ppo: PPOSettings = dataclasses.field(default_factory=PPOSettings)
    # scoring: 20 `aim` episodes of the policy-scoring seed domain, 48 frames each
    protocol: Protocol = dataclasses.field(default_factory=lambda: Protocol(task="aim", episodes=20))
    device: str = "auto"
    wandb: bool = False
    wandb_project: str = "hwm-policy"
    progress: bool = True

    def __post_init__(self):
        if self.model not in FAMILIES:
            raise ValueError(f"model must be one of {list(FAMILIES)}, got '{self.model}'")
        self.policies, self.rows = tuple(self.policies), tuple(self.rows)
        for name, values, known in (("policies", self.policies, POLICIES), ("rows", self.rows, ROWS)):
            unknown = [value for value in values if value not in known]
            if not values or unknown or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct names from {list(known)}, got {list(values)}")
        for name in ("imagination_steps", "upper_bound_steps", "num_envs", "sim_envs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.sampling_steps is not None and self.sampling_steps < 1:
            raise ValueError(f"sampling-steps must be >= 1, got {self.sampling_steps}")
        if self.real_budget is not None and self.real_budget < 1:
            raise ValueError(f"real-budget must be >= 1 frame, got {self.real_budget}")

    @property
    def checkpoint_name(self) -> str:
        return self.checkpoint or f"{self.model}-default"


def quick(experiment: PolicyExperiment) -> PolicyExperiment:
    """Tiny steps everywhere (the test suite's end-to-end run); explicit budgets are kept if smaller."""
    steps = {key: min(value, getattr(experiment, key) or value) for key, value in QUICK_STEPS.items()}
    return dataclasses.replace(
        experiment, **steps,
        task=dataclasses.replace(experiment.task, **QUICK_TASK),
        ppo=dataclasses.replace(experiment.ppo, **QUICK_PPO),
        protocol=dataclasses.replace(experiment.protocol, **QUICK_PROTOCOL),
    )
