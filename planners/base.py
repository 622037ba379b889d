"""What every planner shares: the protocol, action bounds, sampling, scoring and the warm start.

The protocol is three callables so that a world model, the true simulator or a toy linear
system can stand in for each other:

- `dynamics.rollout(state, actions (N, H, A)) -> trajectory (N, H, ...)` (latents, frames
  or states) and `dynamics.action_dim`;
- `cost(trajectory) -> (N,)`, lower is better;
- `planner.plan(dynamics, cost, state) -> actions (H, A)` torch float32, within bounds.

Planners search in the unit box [-1, 1]^A and map affinely onto [low, high] only when
calling the dynamics, so the sampling widths (init/min/max std) mean the same thing for
any action units. All randomness comes from the planner's own CPU `torch.Generator`
(`seed=`), so a seeded plan is the same on every device.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import torch

Cost = Callable[[torch.Tensor], torch.Tensor]


@runtime_checkable
class Dynamics(Protocol):
    """Anything that rolls N action sequences out from one state."""

    action_dim: int

    def rollout(self, state: Any, actions: torch.Tensor) -> torch.Tensor:
        """actions (N, H, A) in action units -> trajectory (N, H, ...)."""
        ...


@runtime_checkable
class Planner(Protocol):
    def plan(self, dynamics: Dynamics, cost: Cost, state: Any, *, executed_steps: int = 1) -> torch.Tensor: ...

    def reset(self, seed: int | None = None, initial_plan=None) -> None: ...


def bounds_from_space(space) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) float32 tensors of a gymnasium Box action space, for `low=`/`high=`."""
    if not hasattr(space, "low") or not hasattr(space, "high"):
        raise ValueError(f"action space must be a gymnasium Box with low/high, got {space}")
    low = torch.as_tensor(space.low, dtype=torch.float32).reshape(-1)
    high = torch.as_tensor(space.high, dtype=torch.float32).reshape(-1)
    return low, high


def gaussian_samples(
    mean: torch.Tensor, std: torch.Tensor, num_samples: int, generator: torch.Generator
) -> torch.Tensor:
    """N sequences around mean (H, A) with per-entry std, clamped to the unit box; sample 0 is the mean.

    Keeping the mean itself among the candidates means an iteration never loses the best
    sequence it started from (and a warm start is always evaluated as is).
    """
    noise = torch.randn((num_samples, *mean.shape), generator=generator)  # (N, H, A)
    noise[0] = 0.0
    return (mean + std * noise).clamp(-1.0, 1.0)


def uniform_samples(num_samples: int, horizon: int, action_dim: int, generator: torch.Generator) -> torch.Tensor:
    """N sequences uniform in the unit box, (N, H, A)."""
    return torch.rand((num_samples, horizon, action_dim), generator=generator) * 2.0 - 1.0


class SamplingPlanner:
    """Base of the sampling planners: arguments, bounds, scoring and the warm start.

    Subclasses write `plan()` as one method (sample, roll out, score, refit, remember).
    The only state kept between calls is the previous plan (in the unit box), used as
    the starting mean of the next call after shifting it by the steps executed since.
    """

    name = "planner"

    def __init__(
        self,
        horizon: int,
        num_samples: int,
        low: float | Sequence[float] | torch.Tensor = -1.0,
        high: float | Sequence[float] | torch.Tensor = 1.0,
        seed: int | None = None,
    ):
        if int(horizon) < 1:
            raise ValueError(f"{self.name}: horizon must be >= 1, got {horizon}")
        if int(num_samples) < 1:
            raise ValueError(f"{self.name}: num_samples must be >= 1, got {num_samples}")
        self.horizon = int(horizon)
        self.num_samples = int(num_samples)
        self.low = torch.as_tensor(low, dtype=torch.float32).reshape(-1)
        self.high = torch.as_tensor(high, dtype=torch.float32).reshape(-1)
        if not (torch.isfinite(self.low).all() and torch.isfinite(self.high).all()):
            raise ValueError(f"{self.name}: action bounds must be finite, got low={low}, high={high}")
        if self.low.shape != self.high.shape or not (self.high > self.low).all():
            raise ValueError(
                f"{self.name}: need low < high elementwise with equal shapes, got low={low}, high={high}"
            )
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()  # fresh entropy: unseeded planners differ run to run
        else:
            self.generator.manual_seed(int(seed))
        self.previous_plan: torch.Tensor | None = None  # (H, A) in the unit box

    def reset(self, seed: int | None = None, initial_plan=None) -> None:
        """Forget the warm start (call between episodes); reseed the sampler if `seed` is given.

        `initial_plan` (H, A) in action units becomes the warm start of the next plan, e.g.
        "hold the current pose" for position-target robots instead of the middle of the bounds.
        """
        self.previous_plan = None
        if seed is not None:
            self.generator.manual_seed(int(seed))
        if initial_plan is not None:
            plan = torch.as_tensor(initial_plan, dtype=torch.float32)
            if plan.ndim != 2 or plan.shape[0] != self.horizon or not torch.isfinite(plan).all():
                raise ValueError(
                    f"{self.name}: initial_plan must be finite with shape (horizon={self.horizon}, A), "
                    f"got {tuple(plan.shape)}"
                )
            low, high = self.bounds(plan.shape[1])
            self.previous_plan = ((plan - low) / (high - low) * 2.0 - 1.0).clamp(-1.0, 1.0)

    def plan(self, dynamics: Dynamics, cost: Cost, state: Any, *, executed_steps: int = 1) -> torch.Tensor:
        raise NotImplementedError

    # --- helpers shared by plan() implementations ---------------------------------------

    def bounds(self, action_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) broadcast to (A,)."""
        if self.low.numel() not in (1, action_dim):
            raise ValueError(
                f"{self.name}: bounds have {self.low.numel()} entries but the dynamics has action_dim {action_dim}"
            )
        return self.low.expand(action_dim), self.high.expand(action_dim)

    def to_action_units(self, unit_actions: torch.Tensor) -> torch.Tensor:
        """Unit box [-1, 1] -> [low, high], elementwise over the last (A) axis."""
        low, high = self.bounds(unit_actions.shape[-1])
        return low + (unit_actions + 1.0) * 0.5 * (high - low)

    def warm_start(self, action_dim: int, executed_steps: int) -> torch.Tensor | None:
        """The previous plan shifted by the steps executed since, (H, A) in the unit box, or None.

        The freed tail repeats the last planned action: for position-target actions (the
        HWM robots) that holds the pose, a neutral continuation.
        """
        if self.previous_plan is None or self.previous_plan.shape != (self.horizon, action_dim):
            return None
        if int(executed_steps) < 0:
            raise ValueError(f"{self.name}: executed_steps must be >= 0, got {executed_steps}")
        shift = min(int(executed_steps), self.horizon - 1)
        kept = self.previous_plan[shift:]
        tail = self.previous_plan[-1:].expand(self.horizon - kept.shape[0], action_dim)
        return torch.cat([kept, tail], dim=0)

    def remember(self, unit_plan: torch.Tensor) -> torch.Tensor:
        """Store the unit-box plan for the next warm start; return it in action units."""
        self.previous_plan = unit_plan.detach().clone()
        return self.to_action_units(self.previous_plan)

    def score(self, dynamics: Dynamics, cost: Cost, state: Any, unit_actions: torch.Tensor) -> torch.Tensor:
        """Roll the (N, H, A) unit-box candidates out and return their costs (N,) float32 on CPU."""
        num_candidates = unit_actions.shape[0]
        trajectory = dynamics.rollout(state, self.to_action_units(unit_actions))
        if not isinstance(trajectory, torch.Tensor) or tuple(trajectory.shape[:2]) != (num_candidates, self.horizon):
            shape = tuple(trajectory.shape) if hasattr(trajectory, "shape") else type(trajectory).__name__
            raise ValueError(
                f"{self.name}: dynamics.rollout must return a tensor (N={num_candidates}, H={self.horizon}, ...), "
                f"got {shape}"
            )
        costs = torch.as_tensor(cost(trajectory)).detach().float().cpu()
        if costs.shape != (num_candidates,):
            raise ValueError(f"{self.name}: cost must return shape ({num_candidates},), got {tuple(costs.shape)}")
        bad = int((~torch.isfinite(costs)).sum())
        if bad:
            raise ValueError(
                f"{self.name}: cost returned {bad} non-finite values (NaN or inf) out of {num_candidates} candidates"
            )
        return costs

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value}" for key, value in self.hyperparameters().items())
        return f"{type(self).__name__}({fields})"

    def hyperparameters(self) -> dict:
        """The settings a benchmark should report next to its numbers."""
        return {"horizon": self.horizon, "num_samples": self.num_samples}


def check_elites(planner: str, num_samples: int, num_elites: int, iterations: int) -> None:
    if int(num_elites) < 1 or int(num_samples) < int(num_elites):
        raise ValueError(
            f"{planner}: need 1 <= num_elites <= num_samples, got num_elites={num_elites}, num_samples={num_samples}"
        )
    if int(iterations) < 1:
        raise ValueError(f"{planner}: iterations must be >= 1, got {iterations}")


def check_positive(planner: str, **values: float) -> None:
    for key, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{planner}: {key} must be a positive number, got {value}")
