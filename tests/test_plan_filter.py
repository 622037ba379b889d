"""The soft deadband across replans (planners/plan_filter.py) and its benchmark switch."""
from __future__ import annotations

import pytest
import torch

from planners import CEM, FilteredPlanner, SamplingPlanner


class FixedPlanner(SamplingPlanner):
    """Plans whatever it is told to next (unit box): the filter's arithmetic alone."""

    name = "fixed"

    def __init__(self, **kwargs):
        super().__init__(horizon=1, num_samples=1, **kwargs)
        self.next_plan = None

    def plan(self, dynamics, cost, state, *, executed_steps=1):
        return self.remember(self.next_plan)


class Commands:
    """A position-target toy: where the robot ends up is the command it was given."""

    action_dim = 3

    def rollout(self, state, actions):
        return actions


class NoisyDistance:
    """Squared distance of the final command to a target, plus noise: a model that ranks close candidates poorly."""

    def __init__(self, target, noise: float, seed: int = 0):
        self.target = torch.as_tensor(target, dtype=torch.float32)
        self.noise = noise
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, trajectory):
        distance = (trajectory[:, -1] - self.target).square().sum(dim=-1)
        return distance + self.noise * torch.randn(distance.shape, generator=self.generator)


def test_big_changes_pass_and_small_ones_are_damped():
    inner = FixedPlanner(low=-2.0, high=2.0)  # unit box = half the action units
    planner = FilteredPlanner(inner, scale=0.05)
    planner.reset(initial_plan=torch.zeros(1, 3))
    inner.next_plan = torch.tensor([[0.5, 0.05, 0.005]])
    plan = planner.plan(Commands(), None, None)
    change = torch.tensor([0.5, 0.05, 0.005])
    expected_unit = change**3 / (change**2 + 0.05**2)  # 0.495, 0.025, 0.0000495
    assert torch.allclose(plan[0], 2.0 * expected_unit, atol=1e-6)  # returned in action units
    assert torch.allclose(inner.previous_plan[0], expected_unit, atol=1e-6)  # and is the next warm start
    assert planner.hyperparameters()["filter_scale"] == 0.05


def test_first_plan_without_a_warm_start_is_not_filtered():
    inner = FixedPlanner()
    planner = FilteredPlanner(inner, scale=0.5)
    inner.next_plan = torch.tensor([[0.3, -0.2, 0.1]])
    assert torch.allclose(planner.plan(Commands(), None, None), inner.next_plan)


def replanned(planner, cost, replans: int) -> torch.Tensor:
    planner.reset(initial_plan=torch.zeros(1, 3))
    return torch.stack([planner.plan(Commands(), cost, None)[0] for _ in range(replans)])  # (replans, 3)


def test_filter_averages_away_jitter_near_the_goal_without_slowing_the_approach():
    target = torch.tensor([0.6, -0.4, 0.2])
    settings = dict(horizon=1, num_samples=16, num_elites=2, iterations=2, init_std=0.1, min_std=0.02)

    def steps_to_reach(plans):
        return int(((plans - target).abs().max(dim=1).values < 0.1).nonzero()[0])

    ratios = []
    for seed in range(4):
        plain = replanned(CEM(**settings, seed=seed), NoisyDistance(target, 0.01, seed), 40)
        filtered = replanned(FilteredPlanner(CEM(**settings, seed=seed), scale=0.05),
                             NoisyDistance(target, 0.01, seed), 40)
        assert steps_to_reach(filtered) <= steps_to_reach(plain) + 2  # a far goal: big moves pass
        tail_plain, tail_filtered = plain[-20:], filtered[-20:]
        ratios.append(float(tail_filtered.std(dim=0).mean() / tail_plain.std(dim=0).mean()))
        assert (tail_filtered.mean(dim=0) - target).abs().max() < 0.05  # still centred on the goal
    assert sum(ratios) / len(ratios) < 0.8, ratios  # jitter damped (0.52-0.71 for these seeds)


def test_bad_filter_arguments():
    with pytest.raises(ValueError, match="scale must be a positive number"):
        FilteredPlanner(CEM(), scale=0.0)
    with pytest.raises(ValueError, match="scale must be a positive number"):
        FilteredPlanner(CEM(), scale=float("nan"))
    with pytest.raises(ValueError, match="wraps a SamplingPlanner"):
        FilteredPlanner(object(), scale=0.1)


def test_benchmark_filters_by_default_and_turns_it_off_per_planner():
    from planners.benchmark import format_settings, make_planner, parse_overrides, planner_settings

    settings = planner_settings("mppi")
    planner = make_planner("mppi", settings, seed=0)
    assert isinstance(planner, FilteredPlanner) and planner.scale == 0.05
    assert "filter 0.05" in format_settings({"hyperparameters": settings})
    off = planner_settings("cem", parse_overrides("cem", ["filter_scale=0"]))
    assert "filter_scale" not in off and isinstance(make_planner("cem", off, seed=0), CEM)  # rows name what planned
    with pytest.raises(ValueError, match="scale must be a positive number"):
        make_planner("cem", planner_settings("cem", {"filter_scale": -1.0}), seed=0)
