"""Planners, costs, world-model dynamics and the MPC loop on problems with known answers."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from planners import (
    CEM,
    MPC,
    MPPI,
    CallableCost,
    ImageGoalCost,
    LatentGoalCost,
    RandomShooting,
    WorldModelContext,
    WorldModelDynamics,
    bounds_from_space,
    load_world_model_dynamics,
)

# --- a linear system with a quadratic cost: the optimum is a least-squares solve ---------

HORIZON = 5


class LinearDynamics:
    """x_{t+1} = A x_t + B u_t for N candidates at once; records the actions it was given."""

    def __init__(self, state_matrix, input_matrix):
        self.state_matrix = torch.as_tensor(state_matrix, dtype=torch.float32)
        self.input_matrix = torch.as_tensor(input_matrix, dtype=torch.float32)
        self.action_dim = self.input_matrix.shape[1]
        self.seen_actions = []

    def rollout(self, state, actions):
        self.seen_actions.append(actions.clone())
        x = torch.as_tensor(state, dtype=torch.float32).expand(actions.shape[0], -1)
        states = []
        for t in range(actions.shape[1]):
            x = x @ self.state_matrix.T + actions[:, t] @ self.input_matrix.T
            states.append(x)
        return torch.stack(states, dim=1)  # (N, H, d)


STATE_MATRIX = [[1.0, 0.1], [0.0, 0.9]]
INPUT_MATRIX = [[0.5, 0.0], [0.1, 0.4]]
START = torch.tensor([0.2, -0.1])
GOAL = torch.tensor([0.6, 0.3])
ACTION_WEIGHT = 0.1


def quadratic_cost(states, actions=None):
    return ((states - GOAL) ** 2).sum(dim=(1, 2))


def plan_cost(dynamics, actions):
    """The full objective sum_t |x_t - g|^2 + w |u_t|^2 of one plan (H, A)."""
    states = dynamics.rollout(START, actions[None])
    return float(quadratic_cost(states) + ACTION_WEIGHT * (actions**2).sum())


class ActionPenalty:
    """The quadratic cost with its action term, recovered from the dynamics' last call."""

    def __init__(self, dynamics):
        self.dynamics = dynamics

    def __call__(self, states):
        actions = self.dynamics.seen_actions[-1]
        return quadratic_cost(states) + ACTION_WEIGHT * (actions**2).sum(dim=(1, 2))


def analytic_optimum():
    """argmin_U |c + G U - g|^2 + w |U|^2 for the stacked linear system."""
    a = torch.tensor(STATE_MATRIX, dtype=torch.float64)
    b = torch.tensor(INPUT_MATRIX, dtype=torch.float64)
    d, m = b.shape
    free = torch.zeros(HORIZON * d, dtype=torch.float64)  # c: the unforced response
    gain = torch.zeros(HORIZON * d, HORIZON * m, dtype=torch.float64)  # G
    for t in range(HORIZON):
        free[t * d : (t + 1) * d] = torch.linalg.matrix_power(a, t + 1) @ START.double()
        for s in range(t + 1):
            gain[t * d : (t + 1) * d, s * m : (s + 1) * m] = torch.linalg.matrix_power(a, t - s) @ b
    target = GOAL.double().repeat(HORIZON) - free
    hessian = gain.T @ gain + ACTION_WEIGHT * torch.eye(HORIZON * m, dtype=torch.float64)
    optimum = torch.linalg.solve(hessian, gain.T @ target)
    return optimum.reshape(HORIZON, m).float()


@pytest.fixture
def linear():
    dynamics = LinearDynamics(STATE_MATRIX, INPUT_MATRIX)
    return dynamics, ActionPenalty(dynamics)


def test_analytic_optimum_lies_inside_the_bounds():
    assert analytic_optimum().abs().max() < 0.9  # so the unconstrained optimum is the constrained one


@pytest.mark.parametrize("planner_class", [CEM, MPPI])
def test_planner_finds_the_quadratic_minimum(planner_class, linear):
    dynamics, cost = linear
    optimum = analytic_optimum()
    plan = planner_class(horizon=HORIZON, iterations=20, seed=0).plan(dynamics, cost, START)
    assert plan.shape == (HORIZON, 2) and plan.dtype == torch.float32
    assert plan_cost(dynamics, plan) - plan_cost(dynamics, optimum) < 0.01 * plan_cost(dynamics, optimum) + 1e-3
    assert (plan - optimum).abs().max() < 0.1


def test_cem_beats_random_shooting_with_the_same_budget(linear):
    dynamics, cost = linear
    for seed in range(3):
        shooting = RandomShooting(horizon=HORIZON, num_samples=3000, seed=seed).plan(dynamics, cost, START)
        cem = CEM(horizon=HORIZON, num_samples=300, iterations=10, seed=seed).plan(dynamics, cost, START)
        assert plan_cost(dynamics, cem) < plan_cost(dynamics, shooting)


@pytest.mark.parametrize("planner_class", [RandomShooting, CEM, MPPI])
def test_bounds_are_respected_when_the_optimum_lies_outside(planner_class):
    dynamics = LinearDynamics(STATE_MATRIX, INPUT_MATRIX)
    far_goal = torch.tensor([50.0, -50.0])
    low, high = torch.tensor([-0.5, -0.2]), torch.tensor([0.3, 0.8])
    planner = planner_class(horizon=HORIZON, low=low, high=high, seed=0)
    plan = planner.plan(dynamics, lambda states: ((states - far_goal) ** 2).sum(dim=(1, 2)), START)
    every_action = torch.cat([actions.reshape(-1, 2) for actions in dynamics.seen_actions])
    assert (every_action >= low).all() and (every_action <= high).all()
    assert (plan >= low).all() and (plan <= high).all()
    if planner_class is not RandomShooting:  # the optimum sits on the bounds: push hardest toward the goal
        assert plan[:, 0].min() > 0.25 and plan[:, 1].max() < -0.15


@pytest.mark.parametrize("planner_class", [RandomShooting, CEM, MPPI])
def test_seeded_plans_are_reproducible(planner_class, linear):
    dynamics, cost = linear
    first = planner_class(horizon=HORIZON, seed=7).plan(dynamics, cost, START)
    second = planner_class(horizon=HORIZON, seed=7).plan(dynamics, cost, START)
    other = planner_class(horizon=HORIZON, seed=8).plan(dynamics, cost, START)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    planner = planner_class(horizon=HORIZON, seed=7)
    planner.plan(dynamics, cost, START)
    planner.reset(seed=7)  # reset + reseed replays the first plan
    assert torch.equal(planner.plan(dynamics, cost, START), first)


def test_warm_start_shifts_the_previous_plan_and_improves_the_next(linear):
    dynamics, cost = linear
    # the next state after executing the first planned action
    planner = CEM(horizon=HORIZON, iterations=10, seed=0)
    first = planner.plan(dynamics, cost, START)
    next_state = dynamics.rollout(START, first[None, :1])[0, 0]
    # warm start: the shifted plan is the first candidate of the next plan
    warm = planner.warm_start(2, executed_steps=1)
    assert torch.allclose(planner.to_action_units(warm[:-1]), first[1:])
    assert torch.equal(warm[-1], warm[-2])  # the freed tail holds the last action

    def one_iteration(warm_started: bool, seed: int) -> float:
        cem = CEM(horizon=HORIZON, iterations=1, seed=seed)
        if warm_started:
            cem.previous_plan = planner.previous_plan.clone()
        return plan_cost(dynamics, cem.plan(dynamics, cost, next_state, executed_steps=1))

    warm_costs = [one_iteration(True, seed) for seed in range(5)]
    cold_costs = [one_iteration(False, seed) for seed in range(5)]
    assert np.mean(warm_costs) < np.mean(cold_costs)
    planner.reset()
    assert planner.previous_plan is None and planner.warm_start(2, 1) is None


def test_initial_plan_seeds_the_first_warm_start(linear):
    dynamics, cost = linear
    low, high = torch.tensor([-0.5, -1.0]), torch.tensor([1.5, 1.0])
    optimum = analytic_optimum()
    planner = RandomShooting(horizon=HORIZON, num_samples=10, low=low, high=high, seed=0)
    planner.reset(initial_plan=optimum)
    assert torch.allclose(planner.to_action_units(planner.previous_plan), optimum, atol=1e-6)
    plan = planner.plan(dynamics, cost, START, executed_steps=0)
    assert torch.allclose(plan, optimum, atol=1e-6)  # 9 random candidates cannot beat the optimum
    with pytest.raises(ValueError, match=r"initial_plan must be finite with shape \(horizon=5, A\)"):
        planner.reset(initial_plan=torch.zeros(3, 2))


def test_random_shooting_replan_never_loses_the_warm_start(linear):
    dynamics, cost = linear
    planner = RandomShooting(horizon=HORIZON, num_samples=50, seed=0)
    first = planner.plan(dynamics, cost, START)
    shifted = planner.to_action_units(planner.warm_start(2, executed_steps=0))
    second = planner.plan(dynamics, cost, START, executed_steps=0)
    assert plan_cost(dynamics, second) <= plan_cost(dynamics, shifted) + 1e-6
    assert torch.allclose(shifted, first)


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CEM(horizon=0), "CEM: horizon must be >= 1"),
        (lambda: MPPI(horizon=-1), "MPPI: horizon must be >= 1"),
        (lambda: RandomShooting(horizon=0), "RandomShooting: horizon must be >= 1"),
        (lambda: CEM(num_samples=20, num_elites=30), "num_elites <= num_samples"),
        (lambda: MPPI(num_samples=10, num_elites=64), "num_elites <= num_samples"),
        (lambda: CEM(iterations=0), "iterations must be >= 1"),
        (lambda: MPPI(temperature=0.0), "temperature must be a positive number"),
        (lambda: MPPI(min_std=3.0, max_std=2.0), "must not exceed max_std"),
        (lambda: CEM(low=1.0, high=-1.0), "low < high"),
        (lambda: CEM(low=-float("inf")), "bounds must be finite"),
    ],
)
def test_bad_planner_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("planner_class", [RandomShooting, CEM, MPPI])
def test_non_finite_cost_names_the_planner_and_count(planner_class, linear):
    dynamics, _ = linear

    def broken_cost(states):
        costs = quadratic_cost(states)
        costs[:3] = float("nan")
        costs[3] = float("inf")
        return costs

    with pytest.raises(ValueError, match=rf"{planner_class.name}: cost returned 4 non-finite values"):
        planner_class(horizon=HORIZON, seed=0).plan(dynamics, broken_cost, START)


def test_wrong_cost_shape_and_bound_size(linear):
    dynamics, _ = linear
    with pytest.raises(ValueError, match=r"cost must return shape \(300,\)"):
        CEM(seed=0).plan(dynamics, lambda states: states.sum(dim=2), START)
    with pytest.raises(ValueError, match="bounds have 3 entries but the dynamics has action_dim 2"):
        CEM(low=[-1, -1, -1], high=[1, 1, 1]).plan(dynamics, quadratic_cost, START)
    with pytest.raises(ValueError, match="cost 'bad' must return shape"):
        CallableCost(lambda t: torch.zeros(3), name="bad")(torch.zeros(5, 2, 1))


# --- MPC on a point mass: plan in a model, execute in the env ------------------------------

DT = 0.2


class PointMassEnv(gym.Env):
    """A damped 2-D point mass pushed by a bounded force; reward -distance to a goal."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, goal=(1.0, -0.6)):
        self.goal = np.asarray(goal, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = np.concatenate([self.np_random.uniform(-0.1, 0.1, 2), np.zeros(2)]).astype(np.float32)
        return self.state.copy(), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        position, velocity = self.state[:2], self.state[2:]
        velocity = 0.9 * velocity + DT * action
        position = position + DT * velocity
        self.state = np.concatenate([position, velocity]).astype(np.float32)
        distance = float(np.linalg.norm(position - self.goal))
        return self.state.copy(), -distance, distance < 0.02, False, {"distance": distance}


class PointMassModel:
    """The same physics, batched in torch: the planner's dynamics."""

    action_dim = 2

    def rollout(self, state, actions):
        state = torch.as_tensor(state, dtype=torch.float32)
        position = state[:2].expand(actions.shape[0], 2)
        velocity = state[2:].expand(actions.shape[0], 2)
        trajectory = []
        for t in range(actions.shape[1]):
            velocity = 0.9 * velocity + DT * actions[:, t]
            position = position + DT * velocity
            trajectory.append(torch.cat([position, velocity], dim=-1))
        return torch.stack(trajectory, dim=1)  # (N, H, 4)


def point_mass_cost(goal):
    goal = torch.as_tensor(goal, dtype=torch.float32)

    def cost(trajectory):
        return ((trajectory[..., :2] - goal) ** 2).sum(dim=(1, 2)) + 0.1 * (trajectory[:, -1, 2:] ** 2).sum(dim=1)

    return CallableCost(cost, name="point_mass")


@pytest.mark.parametrize("planner_class, replan_every", [(CEM, 1), (MPPI, 3)])
def test_mpc_reaches_the_goal_of_a_point_mass(planner_class, replan_every):
    env = PointMassEnv()
    low, high = bounds_from_space(env.action_space)
    planner = planner_class(horizon=8, num_samples=128, num_elites=16, iterations=4, low=low, high=high, seed=0)
    mpc = MPC(planner, PointMassModel(), point_mass_cost(env.goal), replan_every=replan_every)
    states_seen = []

    def state_fn(env, observation, info):
        states_seen.append(info["executed_action"])
        return observation

    result = mpc.run(env, state_fn, steps=60, seed=0)
    steps = len(result["actions"])
    assert result["terminated"], f"did not reach the goal: final distance {result['infos'][-1]['distance']:.3f}"
    assert result["actions"].shape == (steps, 2) and result["actions"].dtype == np.float32
    assert result["rewards"].shape == (steps,)
    assert len(result["plan_seconds"]) == -(-steps // replan_every)
    assert states_seen[0] is None and all(action is not None for action in states_seen[1:])
    assert len(states_seen) == steps  # after the reset and after every non-final step


def test_mpc_bad_input():
    with pytest.raises(ValueError, match=r"replan_every must be in \[1, horizon=5\]"):
        MPC(CEM(horizon=5), PointMassModel(), point_mass_cost((0, 0)), replan_every=6)
    mpc = MPC(CEM(horizon=5, seed=0), PointMassModel(), point_mass_cost((0, 0)))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        mpc.run(PointMassEnv(), lambda env, observation, info: observation, steps=0)
    with pytest.raises(ValueError, match="initial_plan must be finite"):
        mpc.run(PointMassEnv(), lambda env, observation, info: observation, steps=3, initial_plan=np.zeros((4, 2)))
    result = mpc.run(PointMassEnv(), lambda env, observation, info: observation, steps=3, seed=0,
                     initial_plan=np.zeros((5, 2)))
    assert result["actions"].shape == (3, 2)


# --- latent goal costs with a real (tiny, untrained) tokenizer -------------------------------


def tiny_tokenizer(quantizer):
    from models.tokenizers.autoencoder import AutoencoderConfig, ConvTokenizer

    config = AutoencoderConfig(
        image_size=[16, 16], quantizer=quantizer, latent_channels=4, fsq_levels=[5, 5], channels=[8, 8],
        res_blocks=0, bottleneck_blocks=0, norm_groups=4,
    )
    return ConvTokenizer(config).eval()


def random_frames(*shape):
    return torch.randint(0, 256, (*shape, 16, 16, 3), dtype=torch.uint8)


@pytest.mark.parametrize("quantizer", ["continuous", "fsq"])
def test_latent_goal_cost_scores_frames_and_latents_alike(quantizer):
    tokenizer = tiny_tokenizer(quantizer)
    goal_frame = random_frames(1)[0]
    frames = random_frames(6, 3)  # (N, H, 16, 16, 3)
    frames[0, -1] = goal_frame  # candidate 0 ends on the goal
    cost = LatentGoalCost.from_image(tokenizer, goal_frame, reduce="final")
    latents = tokenizer.encode(frames)
    from_frames, from_latents = cost(frames), cost(latents)
    assert from_frames.shape == (6,)
    assert torch.allclose(from_frames, from_latents)
    # zero up to rounding: the goal was encoded alone, the candidate in a batch (kernels may differ)
    assert from_frames[0] < 1e-9 and (from_frames[1:] > 1e-3).all()
    summed = LatentGoalCost.from_image(tokenizer, goal_frame, reduce="sum")(latents)
    assert torch.allclose(summed, cost.step_distances(latents).sum(dim=1))


def test_token_goal_cost_uses_code_vectors():
    tokenizer = tiny_tokenizer("fsq")  # levels [5, 5]: index = d0 + 5 * d1
    goal = torch.zeros(2, 2, dtype=torch.long)  # digits (0, 0) everywhere
    trajectory = torch.zeros(3, 1, 2, 2, dtype=torch.long)
    trajectory[1, 0, 0, 0] = 1  # one cell, one level off
    trajectory[2, 0, 0, 0] = 24  # one cell, the far corner of the grid
    by_codes = LatentGoalCost(goal, tokenizer=tokenizer)(trajectory)
    assert by_codes[0] == 0 and 0 < by_codes[1] < by_codes[2]
    one_hot = LatentGoalCost(goal, tokenizer=tokenizer, token_embedding="onehot")(trajectory)
    assert one_hot[0] == 0 and one_hot[1] == one_hot[2] == 0.25  # one of four cells differs


def test_latent_goal_cost_bad_input():
    tokenizer = tiny_tokenizer("continuous")
    with pytest.raises(ValueError,
                       match=r"goal image is \(32, 32, 3\) torch.uint8; expected uint8 \(16, 16, 3\) frames, the tokenizer's size"):
        LatentGoalCost.from_image(tokenizer, torch.zeros(32, 32, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(16, 16, 3\) torch.float32; expected uint8"):
        LatentGoalCost.from_image(tokenizer, np.zeros((16, 16, 3), dtype=np.float32))
    cost = LatentGoalCost(torch.zeros(4, 4, 4))
    with pytest.raises(ValueError, match="no tokenizer to encode them"):
        cost(random_frames(2, 3))
    with pytest.raises(ValueError, match=r"trajectory must have shape \('N', 'H', 4, 4, 4\)"):
        cost(torch.zeros(2, 3, 4, 2, 2))
    with pytest.raises(ValueError, match="reduce must be one of"):
        LatentGoalCost(torch.zeros(4, 4, 4), reduce="mean")
    with pytest.raises(ValueError, match="NaN or inf"):
        LatentGoalCost(torch.full((4, 4, 4), float("nan")))


def textured_blob(size=48, shift=0):
    """(size, size, 3) uint8: a broad bright blob under a 2-px checker, shifted right by `shift` px."""
    rows, columns = np.arange(size)[:, None], np.arange(size)[None, :] - shift
    blob = np.exp(-((rows - size / 2) ** 2 + (columns - size / 2) ** 2) / (2 * 8.0**2))
    checker = ((rows // 2) + (columns // 2)) % 2
    return np.repeat((255 * (0.5 * blob + 0.5 * checker)).astype(np.uint8)[..., None], 3, axis=2)


def test_image_goal_cost_blur_widens_the_basin():
    """On a fine texture, raw pixel distance is not monotone in the shift (a shift by one texture
    period looks like no shift); blurred, it grows with the shift: what a sampling planner needs."""
    goal = textured_blob()
    shifted = torch.from_numpy(np.stack([textured_blob(shift=k) for k in range(9)]))[:, None]  # (9, 1, H, W, 3)
    raw = ImageGoalCost(goal, blur_sigma=0)(shifted)
    blurred = ImageGoalCost(goal, blur_sigma=4)(shifted)
    assert raw[0] == 0 and blurred[0] == 0
    assert raw[4] < raw[2] and raw[8] < raw[6]  # in phase with the texture again: "closer"
    assert (blurred[1:] > blurred[:-1]).all()


def test_image_goal_cost_decodes_latents_and_scores_frames_alike():
    tokenizer = tiny_tokenizer("continuous")
    goal_frame = random_frames(1)[0]
    latents = tokenizer.encode(random_frames(5, 2))
    decoded = tokenizer.decode(latents)  # (5, 2, 16, 16, 3) uint8
    cost = ImageGoalCost(goal_frame, tokenizer, blur_sigma=1.5)
    assert torch.allclose(cost(latents), cost(decoded))
    assert cost(torch.from_numpy(np.asarray(goal_frame))[None, None]).item() == 0.0
    summed = ImageGoalCost(goal_frame, tokenizer, blur_sigma=1.5, reduce="sum")(latents)
    assert torch.allclose(summed, cost.step_distances(latents).sum(dim=1))


def test_image_goal_cost_bad_input():
    tokenizer = tiny_tokenizer("continuous")
    with pytest.raises(ValueError,
                       match=r"goal image is \(32, 32, 3\) torch.uint8; expected uint8 \(16, 16, 3\) frames, the tokenizer's size"):
        ImageGoalCost(torch.zeros(32, 32, 3, dtype=torch.uint8), tokenizer)
    with pytest.raises(ValueError, match=r"expected uint8 \(H, W, 3\) frames"):
        ImageGoalCost(np.zeros((16, 16, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="blur_sigma must be a finite number"):
        ImageGoalCost(random_frames(1)[0], blur_sigma=float("nan"))
    cost = ImageGoalCost(random_frames(1)[0])
    with pytest.raises(ValueError, match="no tokenizer to decode them"):
        cost(torch.zeros(2, 1, 4, 4, 4))
    with pytest.raises(ValueError, match=r"frames must be \(N, H, 16, 16, 3\)"):
        cost(torch.zeros(2, 1, 8, 8, 3, dtype=torch.uint8))


# --- the world-model adapter -------------------------------------------------------------------


class LinearLatentWorldModel(torch.nn.Module):
    """A world model with the common API whose next latent is a known linear map (plus optional noise).

    It lets the test check what the adapter passes in: broadcasting, chunking, sampling knobs.
    """

    num_past, num_future, action_dim = 2, 1, 3

    def __init__(self):
        super().__init__()
        self.action_gain = torch.nn.Parameter(torch.tensor([0.5, -0.25, 1.0]))
        self.calls = []

    def rollout(self, past_latents, past_actions, future_actions, *, steps=None, cfg_scale=None,
                temperature=None, generator=None):
        self.calls.append({"batch": past_latents.shape[0], "steps": steps, "cfg_scale": cfg_scale,
                           "temperature": temperature, "generator": generator})
        latent = past_latents[:, -1]
        predictions = []
        for t in range(future_actions.shape[1]):
            push = (future_actions[:, t] * self.action_gain).sum(dim=-1)  # (B,)
            latent = 0.9 * latent + push[:, None, None, None]
            if isinstance(generator, list):  # one generator per row, as the real models take
                latent = latent + 0.01 * torch.stack([torch.randn(latent.shape[1:], generator=g) for g in generator])
            elif generator is not None:
                latent = latent + 0.01 * torch.randn(latent.shape, generator=generator)
            predictions.append(latent)
        return torch.stack(predictions, dim=1)  # (B, H, C, h, w)


def test_world_model_dynamics_broadcasts_and_chunks():
    model = LinearLatentWorldModel()
    state = {"past_latents": torch.randn(2, 4, 3, 3), "past_actions": torch.randn(2, 3)}
    actions = torch.rand(10, 4, 3) * 2 - 1
    whole = WorldModelDynamics(model, steps=2, seed=0).rollout(state, actions)
    chunked = WorldModelDynamics(model, steps=2, chunk_size=3, seed=0).rollout(state, actions)
    assert whole.shape == (10, 4, 4, 3, 3)
    assert torch.allclose(whole, chunked)
    assert [call["batch"] for call in model.calls] == [10, 3, 3, 3, 1]
    assert all(call["steps"] == 2 and call["cfg_scale"] is None for call in model.calls)
    # each candidate is rolled out from the same context
    single = WorldModelDynamics(model, seed=0).rollout(state, actions[4:5])
    assert torch.allclose(single[0], whole[4])
    seeded = [WorldModelDynamics(model, seed=3).rollout(state, actions) for _ in range(2)]
    assert torch.equal(seeded[0], seeded[1]) and not torch.equal(seeded[0], whole)


def test_world_model_dynamics_common_noise_makes_costs_differ_only_through_actions():
    model = LinearLatentWorldModel()
    state = {"past_latents": torch.randn(2, 4, 3, 3), "past_actions": torch.randn(2, 3)}
    same_actions = torch.full((6, 2, 3), 0.3)
    common = WorldModelDynamics(model, seed=1, chunk_size=4).rollout(state, same_actions)
    assert torch.equal(common, common[:1].expand_as(common))  # one noise draw for all candidates, across chunks
    independent = WorldModelDynamics(model, seed=1, common_noise=False).rollout(state, same_actions)
    assert not torch.equal(independent[0], independent[1])
    # a new call draws new noise: the shared draw is per call, not frozen
    dynamics = WorldModelDynamics(model, seed=1)
    assert not torch.equal(dynamics.rollout(state, same_actions), dynamics.rollout(state, same_actions))


def test_cem_plans_through_world_model_dynamics_to_a_goal_latent():
    model = LinearLatentWorldModel()
    dynamics = WorldModelDynamics(model, chunk_size=128)
    state = {"past_latents": torch.zeros(2, 4, 3, 3), "past_actions": torch.zeros(2, 3)}
    goal = torch.full((4, 3, 3), 1.2)  # reachable: the push per step is at most 1.75
    plan = CEM(horizon=3, seed=0).plan(dynamics, LatentGoalCost(goal), state)
    reached = dynamics.rollout(state, plan[None])[0, -1]
    assert (reached - goal).abs().max() < 0.05


def test_world_model_dynamics_bad_state():
    dynamics = WorldModelDynamics(LinearLatentWorldModel())
    actions = torch.zeros(4, 2, 3)
    with pytest.raises(ValueError, match="state must be a dict"):
        dynamics.rollout(torch.zeros(2, 4, 3, 3), actions)
    with pytest.raises(ValueError, match=r"past_latents'\] must have shape \(2, ...\)"):
        dynamics.rollout({"past_latents": torch.zeros(3, 4, 3, 3), "past_actions": torch.zeros(2, 3)}, actions)
    with pytest.raises(ValueError, match=r"past_actions'\] must have shape \(2, 3\)"):
        dynamics.rollout({"past_latents": torch.zeros(2, 4, 3, 3), "past_actions": torch.zeros(2, 5)}, actions)
    with pytest.raises(ValueError, match=r"actions must have shape \(N, H, 3\)"):
        dynamics.rollout({"past_latents": torch.zeros(2, 4, 3, 3), "past_actions": torch.zeros(2, 3)}, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        WorldModelDynamics(LinearLatentWorldModel(), chunk_size=0)


def test_world_model_context_slides_frames_and_actions():
    tokenizer = tiny_tokenizer("continuous")
    context = WorldModelContext(tokenizer, num_past=2)
    with pytest.raises(ValueError, match="call start"):
        context(None, random_frames(1)[0], {"executed_action": None})
    frames, actions = random_frames(2), torch.randn(2, 3)
    context.start(frames, actions)
    state = context(None, frames[-1].numpy(), {"executed_action": None})  # right after the reset: unchanged
    # atol: frames encoded one at a time or in a batch may round differently (kernels differ)
    assert torch.allclose(state["past_latents"], tokenizer.encode(frames[None])[0], atol=1e-6)
    new_frame, new_action = random_frames(1)[0].numpy(), np.ones(3, dtype=np.float32)
    state = context(None, new_frame, {"executed_action": new_action})
    expected = tokenizer.encode(torch.stack([frames[1], torch.from_numpy(new_frame)])[None])[0]
    assert torch.allclose(state["past_latents"], expected, atol=1e-6)
    assert torch.equal(state["past_actions"], torch.stack([actions[1], torch.ones(3)]))


def test_planning_through_a_real_masked_world_model():
    """End to end on a tiny untrained Masked-HWM: tokens in, tokens out, chunking changes nothing."""
    masked = pytest.importorskip("models.masked")
    config = masked.MaskedConfig(
        vocab_size=25, fsq_levels=[5, 5], token_grid=[4, 4], num_past=2, action_dim=3, width=32, depth=1,
        num_heads=2, unshared_blocks=1, num_sampling_steps=2, unmask_mode="confidence",
    )
    model = masked.MaskedHWM(config).eval()
    tokenizer = tiny_tokenizer("fsq")  # 16x16 -> 4x4 tokens of 25 codes
    context = WorldModelContext(tokenizer, num_past=2)
    context.start(random_frames(2), torch.zeros(2, 3))
    state = context(None, None, {"executed_action": None})
    assert state["past_latents"].shape == (2, 4, 4) and state["past_latents"].dtype == torch.int64
    actions = torch.rand(4, 2, 3) * 2 - 1
    whole = WorldModelDynamics(model).rollout(state, actions)
    chunked = WorldModelDynamics(model, chunk_size=2).rollout(state, actions)
    assert whole.shape == (4, 2, 4, 4) and whole.dtype == torch.int64
    assert torch.equal(whole, chunked)  # argmax decoding with confidence unmasking is deterministic
    cost = LatentGoalCost.from_image(tokenizer, random_frames(1)[0])
    plan = CEM(horizon=2, num_samples=6, num_elites=2, iterations=1, seed=0).plan(
        WorldModelDynamics(model, chunk_size=4), cost, state
    )
    assert plan.shape == (2, 3) and plan.abs().max() <= 1.0
    with pytest.raises(ValueError, match="cfg_scale does not apply"):
        WorldModelDynamics(model, cfg_scale=2.0).rollout(state, actions)


def test_planning_through_a_real_flow_world_model():
    """End to end on a tiny untrained Flow-HWM: latents in, latents out, seeded noise reproducible."""
    flow = pytest.importorskip("models.flow")
    config = flow.FlowConfig(
        latent_channels=4, latent_height=4, latent_width=4, num_past=2, action_dim=3, width=32, depth=1,
        num_heads=2, unshared_blocks=1, num_sampling_steps=1,
    )
    model = flow.FlowHWM(config).eval()
    tokenizer = tiny_tokenizer("continuous")  # 16x16 -> (4, 4, 4) latents
    context = WorldModelContext(tokenizer, num_past=2)
    context.start(random_frames(2), torch.zeros(2, 3))
    state = context(None, None, {"executed_action": None})
    actions = torch.rand(5, 3, 3) * 2 - 1
    first, second = (WorldModelDynamics(model, chunk_size=2, seed=1).rollout(state, actions) for _ in range(2))
    assert first.shape == (5, 3, 4, 4, 4) and first.dtype == torch.float32
    assert torch.equal(first, second)
    cost = LatentGoalCost.from_image(tokenizer, random_frames(1)[0], reduce="sum")
    plan = MPPI(horizon=2, num_samples=8, num_elites=2, iterations=2, seed=0).plan(
        WorldModelDynamics(model, steps=1, seed=0), cost, state
    )
    assert plan.shape == (2, 3) and plan.abs().max() <= 1.0
    with pytest.raises(ValueError, match="temperature"):
        WorldModelDynamics(model, temperature=1.0).rollout(state, actions)


def test_mpc_in_the_simulator_with_the_simulator_as_its_model():
    """The oracle row: the same planner and goal-image cost, with SimDynamics as the model."""
    sim_dynamics = pytest.importorskip("hwm_env.sim.dynamics")
    import hwm_env  # noqa: F401  (registers HWM-Sim-v0)
    from models.tokenizers.autoencoder import AutoencoderConfig, ConvTokenizer

    tokenizer = ConvTokenizer(AutoencoderConfig(
        image_size=[64, 64], latent_channels=4, channels=[8, 8, 8], res_blocks=0, bottleneck_blocks=0, norm_groups=4,
    )).eval()
    env = gym.make("HWM-Sim-v0")
    model_env = gym.make("HWM-Sim-v0").unwrapped
    model_env.reset(seed=0)
    goal_frame, _ = env.reset(seed=1)
    dynamics = sim_dynamics.SimDynamics(model_env)
    planner = RandomShooting(horizon=2, num_samples=4, seed=0)
    mpc = MPC(planner, dynamics, LatentGoalCost.from_image(tokenizer, goal_frame), replan_every=2)
    result = mpc.run(env, lambda env, observation, info: env.unwrapped.get_state(), steps=3, seed=0)
    assert result["actions"].shape == (3, 25) and len(result["plan_seconds"]) == 2
    assert np.abs(result["actions"]).max() <= 1.0
    env.close()
    model_env.close()


def test_load_world_model_dynamics_from_a_checkpoint_folder(tmp_path):
    """A saved world model + nested tokenizer load as (dynamics, tokenizer) ready for planning."""
    flow = pytest.importorskip("models.flow")
    from models.checkpoint import save_checkpoint

    config = flow.FlowConfig(
        latent_channels=4, latent_height=4, latent_width=4, num_past=2, action_dim=3, width=32, depth=1,
        num_heads=2, unshared_blocks=1, num_sampling_steps=1,
    )
    model = flow.FlowHWM(config)
    tokenizer_dir = tiny_tokenizer("continuous").save(tmp_path / "tokenizer")
    checkpoint = save_checkpoint(tmp_path / "flow", model.state_dict(), model.checkpoint_config(),
                                 extra_files={"tokenizer": tokenizer_dir})
    dynamics, tokenizer = load_world_model_dynamics(checkpoint, chunk_size=4, seed=0)
    assert dynamics.action_dim == 3 and dynamics.num_past == 2 and tokenizer.image_size == (16, 16)
    state = {"past_latents": tokenizer.encode(random_frames(1, 2))[0], "past_actions": torch.zeros(2, 3)}
    assert dynamics.rollout(state, torch.zeros(6, 2, 3)).shape == (6, 2, 4, 4, 4)
    with pytest.raises(FileNotFoundError, match="no tokenizer/ folder"):
        load_world_model_dynamics(save_checkpoint(tmp_path / "bare", model.state_dict(), model.checkpoint_config()))
