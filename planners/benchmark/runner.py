"""Running the protocol: MPC episodes for each (model, planner), the baselines, one JSON row each."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from planners.benchmark.episodes import Episode, EpisodeResult, make_episodes, score
from planners.benchmark.held_actions import HeldActionDynamics, action_repeat_env
from planners.benchmark.planning_models import OraclePlanning, WorldModelPlanning
from planners.benchmark.protocol import (
    MODEL_LABELS, MODELS, PLANNERS, WORLD_MODELS, Protocol, make_planner, planner_settings,
)
from planners.benchmark.report import summarize


class CpuTimedPlanner:
    """A planner that also records the process CPU time of each `plan` call (MPC records wall time)."""

    def __init__(self, planner):
        self.planner = planner
        self.horizon = planner.horizon
        self.cpu_seconds: list[float] = []

    def reset(self, *args, **kwargs) -> None:
        self.planner.reset(*args, **kwargs)

    def plan(self, *args, **kwargs):
        started = time.process_time()
        try:
            return self.planner.plan(*args, **kwargs)
        finally:
            self.cpu_seconds.append(time.process_time() - started)


def run_planning_episode(env, task, episode: Episode, planning, planner: str, settings: dict,
                         protocol: Protocol, probe=None) -> EpisodeResult:
    """MPC from the episode's start, planning held actions of the task's controlled joints."""
    from planners.mpc import MPC

    low, high = task.action_box(episode.task_episode)
    planner_object = CpuTimedPlanner(make_planner(planner, settings, episode.planner_seed, low=low, high=high))
    dynamics, cost, state_fn = planning.for_episode(episode, episode.planner_seed, protocol, task, probe)
    dynamics = HeldActionDynamics(dynamics, planning.model_steps_per_hold(protocol.action_repeat))
    env.set_state(episode.start)
    hold_plan = np.repeat(episode.hold_action[None], planner_object.horizon, axis=0)
    result = MPC(planner_object, dynamics, cost, replan_every=protocol.replan_every).run(
        action_repeat_env(env, protocol.action_repeat), state_fn, protocol.decisions,
        observation=episode.start_frame.copy(), info={"state": env.joint_state()}, initial_plan=hold_plan,
    )
    return score(env, task, episode, result["plan_seconds"], planner_object.cpu_seconds)


def run_baseline_episode(env, task, episode: Episode, baseline: str, protocol: Protocol) -> EpisodeResult:
    """Random actions (uniform in the task's action box, seeded per episode, held likewise), the start
    pose held, or the task's scripted controller (privileged: it reads the simulator; every frame)."""
    env.set_state(episode.start)
    low, high = task.action_box(episode.task_episode)
    rng = np.random.default_rng(episode.planner_seed)
    for _ in range(protocol.decisions):
        if baseline == "scripted":
            for _ in range(protocol.action_repeat):
                env.advance(task.scripted_action(env, episode.task_episode))
            continue
        action = rng.uniform(low, high).astype(np.float32) if baseline == "random" else episode.hold_action
        for _ in range(protocol.action_repeat):
            env.advance(action)
    return score(env, task, episode)


def _load_world_model(kind, checkpoint, device, sampling_steps, required, log, precision="auto"):
    try:
        return WorldModelPlanning(kind, checkpoint, device=device, sampling_steps=sampling_steps, precision=precision)
    except FileNotFoundError as error:
        if kind in required:
            raise FileNotFoundError(f"{MODEL_LABELS[kind]} rows: {error}") from error
        log(f"skipping the {MODEL_LABELS[kind]} rows: {error}")
        return None


def _oracle_tokenizer(oracle_tokenizer, world_models: dict, checkpoints: dict, device, required, log):
    """(tokenizer, source) for the oracle's cost: the given one, else the Flow then Masked model's, else shipped."""
    from models.checkpoint import resolve_checkpoint
    from models.tokenizers import load_tokenizer

    if oracle_tokenizer is not None:
        return load_tokenizer(oracle_tokenizer, device=device), str(resolve_checkpoint(oracle_tokenizer))
    for kind in WORLD_MODELS:
        if world_models.get(kind) is not None:
            planning = world_models[kind]
            return planning.tokenizer, f"{planning.checkpoint}/tokenizer"
    candidates = [f"{checkpoints[kind]}/tokenizer" for kind in WORLD_MODELS if checkpoints.get(kind)]
    candidates += ["tokenizer-continuous", "tokenizer-fsq"]
    for candidate in candidates:
        try:
            if candidate.endswith("/tokenizer"):  # a world model's nested tokenizer (shipped names resolve first)
                path = resolve_checkpoint(candidate[: -len("/tokenizer")]) / "tokenizer"
            else:
                path = resolve_checkpoint(candidate)
            return load_tokenizer(path, device=device), str(path)
        except FileNotFoundError:
            continue
    message = f"no tokenizer for the oracle's goal-image cost (tried {candidates}); pass --oracle-tokenizer"
    if "oracle" in required:
        raise FileNotFoundError(message)
    log(f"skipping the oracle rows: {message}")
    return None, None


def run_planning_benchmark(
    models: Sequence[str] = MODELS,
    planners: Sequence[str] = PLANNERS,
    *,
    flow: str = "flow-default",
    masked: str = "masked-default",
    oracle_tokenizer: str | None = None,
    protocol: Protocol | None = None,
    planner_overrides: dict[str, dict] | None = None,
    quick: bool = False,
    sampling_steps: dict[str, int | None] | None = None,
    required: Sequence[str] = (),
    device: str = "cpu",
    precision: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_row: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Run the protocol on its task; one row per (model, planner) plus the random, hold and scripted baselines.

    `quick` shrinks the planners (the protocol is whatever `protocol` says).
    `sampling_steps` per family ({"flow": n, "masked": n}); missing or None means the
    planning sampler (`planning_models.PLANNING_SAMPLING_STEPS`, greedy MaskGIT).
    `required`: model names that must run; a missing checkpoint for any other world model
    (or for the oracle's cost tokenizer) skips its rows with a message through `log`.
    `on_row(rows_so_far)` is called after every row (e.g. to save partial results).
    `precision` ("auto", "fp32", "bf16"; `models.precision`) is the world models' inference precision.
    """
    from tqdm.auto import tqdm

    from hwm_env.sim.env import HWMSimEnv
    from hwm_env.tasks import make_task

    models, planners = tuple(models), tuple(planners)
    if not models:
        raise ValueError(f"no model to benchmark; choose from {list(MODELS)}")
    for name in models:
        if name not in MODELS:
            raise ValueError(f"unknown model '{name}'; known: {list(MODELS)}")
    for name in planners:
        if name not in PLANNERS:
            raise ValueError(f"unknown planner '{name}'; known: {list(PLANNERS)}")
    protocol = protocol or Protocol()
    task = make_task(protocol.task)
    probe = None
    if protocol.cost == "probe" and any(model not in ("random", "hold", "scripted") for model in models):
        from models.probe import load_probe
        from planners.task_cost import check_probe_for_task

        probe = load_probe(protocol.probe, device=device)
        check_probe_for_task(probe, task, protocol.probe)
    overrides = planner_overrides or {}
    settings = {planner: planner_settings(planner, overrides.get(planner), quick) for planner in planners}
    for planner, values in settings.items():
        make_planner(planner, values, seed=0)  # bad hyper-parameters fail before anything loads
        if protocol.replan_every > values["horizon"]:
            raise ValueError(f"replan-every ({protocol.replan_every}) must not exceed the {planner} horizon "
                             f"({values['horizon']})")
    sampling_steps = {"flow": None, "masked": None, **(sampling_steps or {})}
    checkpoints = {"flow": flow, "masked": masked}

    world_models = {kind: _load_world_model(kind, checkpoints[kind], device, sampling_steps.get(kind), required, log,
                                            precision)
                    for kind in WORLD_MODELS if kind in models}
    oracle = None
    if "oracle" in models:
        tokenizer, source = _oracle_tokenizer(oracle_tokenizer, world_models, checkpoints, device, required, log)
        oracle = (tokenizer, source) if tokenizer is not None else None

    tokenizers = [planning.tokenizer for planning in world_models.values() if planning is not None]
    tokenizers += [oracle[0]] if oracle is not None else []
    sizes = {tuple(tokenizer.image_size) for tokenizer in tokenizers}
    if len(sizes) > 1:
        raise ValueError(f"the planning models' tokenizers expect different image sizes {sorted(sizes)}; "
                         "benchmark them in separate runs")
    height, width = sizes.pop() if sizes else (64, 64)
    if height != width:
        raise ValueError(f"HWM-Sim-v0 renders square frames; the tokenizer expects {height}x{width}")

    env = HWMSimEnv(resolution=height)
    planning_models = dict(world_models)
    rows: list[dict] = []
    try:
        if oracle is not None:
            planning_models["oracle"] = OraclePlanning(oracle[0], oracle[1], height, env.control_hz)
        if probe is not None and tuple(probe.image_size) != (height, width):
            raise ValueError(f"{protocol.probe}: the probe reads {probe.image_size[0]}x{probe.image_size[1]} frames, "
                             f"the planning models {height}x{width}")
        episodes = make_episodes(env, task, protocol, progress=progress)
        for model in models:
            if model in ("random", "hold", "scripted"):
                results = [run_baseline_episode(env, task, episode, model, protocol)
                           for episode in tqdm(episodes, desc=MODEL_LABELS[model], disable=not progress)]
                rows.append(summarize(model, None, results, episodes, protocol, None, {"checkpoint": None}))
                if on_row is not None:
                    on_row(rows)
                continue
            planning = planning_models.get(model)
            if planning is None:
                continue  # skipped above, with a message
            for planner in planners:
                results = []
                bar = tqdm(episodes, desc=f"{MODEL_LABELS[model]} + {planner.upper()}", disable=not progress)
                for episode in bar:
                    results.append(run_planning_episode(env, task, episode, planning, planner, settings[planner],
                                                        protocol, probe))
                    seconds = [value for result in results for value in result.plan_seconds]
                    bar.set_postfix(success=f"{np.mean([result.success for result in results]):.2f}",
                                    error=f"{np.mean([result.error for result in results]):.3f}",
                                    s_per_plan=f"{np.mean(seconds):.2f}")
                rows.append(summarize(model, planner.upper(), results, episodes, protocol, settings[planner],
                                      planning.describe()))
                if on_row is not None:
                    on_row(rows)
    finally:
        env.close()
        for planning in planning_models.values():
            if planning is not None:
                planning.close()
    return rows
