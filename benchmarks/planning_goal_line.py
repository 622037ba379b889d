"""On the straight path from an episode's start command to its goal command, where is the goal cost lowest?

    python benchmarks/planning_goal_line.py [--checkpoint flow-default] [--episodes 20] [--seed 0]
        [--planning benchmarks/results/planning.json] [--json benchmarks/results/planning_goal_line.json]

A diagnostic for the planning benchmark's failures (its seeded start/goal pairs and goal cost).
From each episode's start, the goal joints' commands are set to start + f x (goal - start) for
fractions f from 0 to `--max-fraction`, held for `action_repeat` frames, and each is scored by the
world model's rollout and by encoding the frame the simulator renders. The simulator's cost is
lowest near f = 1, in a narrow basin: only there does every joint line up. A model that blurs what
a big move shows (its one-step prediction is a conditional mean) finds a wide, shallow basin whose
lowest point lies past the goal: the command that looks best to it overshoots. Per episode:
`argmin` (the fraction of lowest cost), `depth` (1 - lowest cost / cost at f = 0: how much
a planner can gain on this path) and `depth_at_goal` (the same at f = 1), for the model and the
simulator. With `--planning FILE` (a `hwm bench planning` JSON over the same seed), the summary
also splits the episodes by whether each of that file's rows for this model reached the goal.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from models.atomic import atomic_write_text
from planners.benchmark import add_diagnostic_arguments

SOURCES = ("model", "simulator")
SUMMARY_KEYS = ("argmin", "depth", "depth_at_goal")  # what curve_summary reports


def line_actions(episode, env, fractions: np.ndarray) -> np.ndarray:
    """(F, 25) commands: the goal joints at start + f (goal - start), the rest held; inside the planner's box."""
    from hwm_env.sim.goals import GOAL_JOINTS
    from planners.benchmark import goal_joint_commands

    joints = list(GOAL_JOINTS)
    start = episode.hold_action[joints]
    toward_goal = env.action_from_state(episode.goal_state)[joints] - start
    return goal_joint_commands(episode.hold_action, start + fractions[:, None] * toward_goal)


def curve_summary(costs: np.ndarray, fractions: np.ndarray) -> dict:
    """argmin, depth and depth at f = 1 of one cost curve over `fractions` (which hold 0 and 1)."""
    at_start, at_goal = costs[np.isclose(fractions, 0.0)][0], costs[np.isclose(fractions, 1.0)][0]
    return {"argmin": float(fractions[int(np.argmin(costs))]), "depth": float(1.0 - costs.min() / at_start),
            "depth_at_goal": float(1.0 - at_goal / at_start)}


def split_by_outcome(rows: list[dict], planning_rows: list[dict], family: str, seed: int) -> dict:
    """{"<model> <planner>": {"succeeded"/"failed": means over those episodes}} for the planning rows of `family`."""
    out = {}
    for planning_row in planning_rows:
        protocol = planning_row.get("protocol", {})
        if planning_row.get("model") != family or protocol.get("seed") != seed:
            continue
        errors = planning_row["final_errors"]
        if len(errors) < len(rows):
            raise ValueError(f"--planning: the {family} {planning_row['planner']} row has {len(errors)} episodes, "
                             f"fewer than the {len(rows)} measured here")
        threshold = protocol["success_threshold"]
        groups = {}
        for outcome, chosen in (("succeeded", [e < threshold for e in errors]), ("failed", [e >= threshold for e in errors])):
            picked = [row for row, keep in zip(rows, chosen) if keep]
            groups[outcome] = {"episodes": len(picked), **{
                f"{source}_{key}": (float(np.mean([row[source][key] for row in picked])) if picked else None)
                for source in SOURCES for key in SUMMARY_KEYS}}
        out[f"{family} {planning_row['planner']}"] = groups
    if not out:
        raise ValueError(f"--planning: no '{family}' row with episode seed {seed}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="flow-default", help="Flow-HWM or Masked-HWM checkpoint")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-fraction", type=float, default=2.0, help="farthest point, in start-to-goal lengths")
    parser.add_argument("--points", type=int, default=17, help="fractions from 0 to --max-fraction")
    parser.add_argument("--planning", default=None, help="a `hwm bench planning` JSON of the same seed")
    add_diagnostic_arguments(parser, "benchmarks/results/planning_goal_line.json")
    args = parser.parse_args()
    fractions = np.linspace(0.0, args.max_fraction, args.points)
    if args.max_fraction < 1.0 or not np.isclose(fractions, 1.0).any():
        parser.error(f"the fractions must include 1 (the goal): --max-fraction {args.max_fraction:g} with "
                     f"--points {args.points} gives {np.round(fractions, 3).tolist()}")
    if args.planning and not Path(args.planning).is_file():
        parser.error(f"--planning: no file {args.planning}")
    planning_rows = json.loads(Path(args.planning).read_text()) if args.planning else None
    torch.set_num_threads(args.threads)

    from hwm_env.sim.dynamics import SimDynamics
    from hwm_env.sim.env import HWMSimEnv
    from models.checkpoint import read_config, resolve_checkpoint
    from planners.benchmark import HeldActionDynamics, Protocol, WorldModelPlanning, make_episodes

    family = read_config(resolve_checkpoint(args.checkpoint)).get("family")
    planning = WorldModelPlanning(family, args.checkpoint, sampling_steps=args.sampling_steps)
    env = HWMSimEnv(resolution=planning.tokenizer.image_size[0])
    simulator = HeldActionDynamics(SimDynamics(env), args.action_repeat)  # the oracle's rollouts
    protocol = Protocol(episodes=args.episodes, seed=args.seed, cost=args.cost, cost_blur=args.cost_blur)
    episodes = make_episodes(env, protocol, progress=True)
    model_steps = planning.model_steps_per_hold(args.action_repeat)
    rows = []
    for episode in episodes:
        dynamics, cost, state_fn = planning.for_episode(episode, seed=episode.planner_seed, protocol=protocol)
        state = state_fn(env, episode.start_frame, {})
        held = torch.from_numpy(line_actions(episode, env, fractions)[:, None])
        costs = {"model": cost(HeldActionDynamics(dynamics, model_steps).rollout(state, held)).double().numpy(),
                 "simulator": cost(simulator.rollout(episode.start, held)).double().numpy()}
        row = {"episode": episode.index, "costs": {source: costs[source].tolist() for source in SOURCES},
               **{source: curve_summary(costs[source], fractions) for source in SOURCES}}
        rows.append(row)
        print(f"episode {episode.index}: lowest cost at f = {row['model']['argmin']:.3g} (model), "
              f"{row['simulator']['argmin']:.3g} (simulator); depth {row['model']['depth']:.2f} / "
              f"{row['simulator']['depth']:.2f}", flush=True)
    means = {f"{source}_{key}": float(np.mean([row[source][key] for row in rows]))
             for source in SOURCES for key in SUMMARY_KEYS}
    result = {"checkpoint": args.checkpoint, "episodes": args.episodes, "seed": args.seed,
              "action_repeat": args.action_repeat, "cost": args.cost,
              "cost_blur": args.cost_blur if args.cost == "image" else None,
              "sampling_steps": planning.describe()["sampling_steps"], "fractions": fractions.tolist(),
              "rows": rows, "mean": means}
    if planning_rows is not None:
        result["planning"] = args.planning
        result["by_outcome"] = split_by_outcome(rows, planning_rows, family, args.seed)
    atomic_write_text(args.json, json.dumps(result, indent=2))
    print("mean: " + ", ".join(f"{key} {value:.3f}" for key, value in means.items()))
    for name, groups in result.get("by_outcome", {}).items():
        for outcome, values in groups.items():
            shown = ", ".join(f"{key} {value:.3f}" for key, value in values.items() if key != "episodes" and value is not None)
            print(f"{name}, {outcome} ({values['episodes']} episodes): {shown}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
