"""Does a world model rank a planner's candidate actions the way the simulator does?

    python benchmarks/planning_cost_ranking.py [--checkpoint flow-default] [--episodes 6]
                                               [--json benchmarks/results/planning_cost_ranking.json]

A diagnostic for the planning benchmark (same seeded start/goal pairs, same latent goal
cost). From each episode's start, N candidate actions are held for `action_repeat` frames
and scored twice: by the world model's latent rollout, and by encoding the frame the
simulator renders after the same actions. The Spearman rank correlation of the two costs
says whether the model can steer a sampling planner. Four candidate sets:
- `goal_line`: points on the line from the start command to the goal command (scale drawn
  from U(-0.5, 1)) plus N(0, 0.05) noise: a nearly one-dimensional choice;
- `planner`: the start command plus N(0, std) on all goal joints, what CEM/MPPI sample first;
- `view`: the same noise on the four joints that aim the camera only (a whole-image shift);
- `arms`: the same noise on the other goal joints only (the arms: local changes).
`view` and `arms` say which kind of motion the model ranks badly. `--sampling-steps` and
`--cfg-scale` (Flow-HWM) score the same candidates with other sampler settings.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from torchmetrics.functional import spearman_corrcoef

from models.atomic import atomic_write_text
from planners.benchmark import add_diagnostic_arguments


def candidate_sets(episode, env, count: int, std: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from hwm_env.sim.goals import GOAL_JOINTS
    from planners.benchmark import goal_joint_commands, view_joints

    joints = list(GOAL_JOINTS)
    start = episode.hold_action[joints]
    toward_goal = env.action_from_state(episode.goal_state)[joints] - start
    is_view = np.isin(joints, view_joints())
    sets = {
        "goal_line": start + rng.uniform(-0.5, 1.0, (count, 1)) * toward_goal + rng.normal(0, 0.05, (count, len(joints))),
        "planner": start + rng.normal(0, std, (count, len(joints))),
        "view": start + rng.normal(0, std, (count, len(joints))) * is_view,
        "arms": start + rng.normal(0, std, (count, len(joints))) * ~is_view,
    }
    return {name: goal_joint_commands(episode.hold_action, values) for name, values in sets.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="flow-default", help="Flow-HWM or Masked-HWM checkpoint")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--std", type=float, default=0.1, help="planner set: sampling std on the goal joints")
    parser.add_argument("--cfg-scale", type=float, default=None, help="Flow-HWM guidance scale (default: the checkpoint's)")
    add_diagnostic_arguments(parser, "benchmarks/results/planning_cost_ranking.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from hwm_env.sim.dynamics import SimDynamics
    from hwm_env.sim.env import HWMSimEnv
    from models.checkpoint import read_config, resolve_checkpoint
    from planners.benchmark import HeldActionDynamics, Protocol, WorldModelPlanning, make_episodes

    family = read_config(resolve_checkpoint(args.checkpoint)).get("family")
    planning = WorldModelPlanning(family, args.checkpoint, sampling_steps=args.sampling_steps, cfg_scale=args.cfg_scale)
    env = HWMSimEnv(resolution=planning.tokenizer.image_size[0])
    simulator = HeldActionDynamics(SimDynamics(env), args.action_repeat)  # the oracle's rollouts: the frame after each hold
    protocol = Protocol(episodes=args.episodes, seed=args.seed, cost=args.cost, cost_blur=args.cost_blur)
    episodes = make_episodes(env, protocol, progress=True)
    rng = np.random.default_rng(args.seed)
    model_steps = planning.model_steps_per_hold(args.action_repeat)
    rows = []
    for episode in episodes:
        dynamics, cost, state_fn = planning.for_episode(episode, seed=episode.planner_seed, protocol=protocol)
        state = state_fn(env, episode.start_frame, {})
        row = {"episode": episode.index}
        for name, actions in candidate_sets(episode, env, args.candidates, args.std, rng).items():
            held = torch.from_numpy(actions[:, None])
            model_cost = cost(HeldActionDynamics(dynamics, model_steps).rollout(state, held)).float()
            sim_cost = cost(simulator.rollout(episode.start, held)).float()
            row[name] = float(spearman_corrcoef(model_cost, sim_cost))
        rows.append(row)
        scores = ", ".join(f"{name} {value:.2f}" for name, value in row.items() if name != "episode")
        print(f"episode {episode.index}: Spearman(model cost, simulator cost) {scores}", flush=True)
    means = {name: float(np.mean([row[name] for row in rows])) for name in rows[0] if name != "episode"}
    described = planning.describe()  # the sampler settings in force, the checkpoint's where not given
    result = {"checkpoint": args.checkpoint, "episodes": args.episodes, "candidates": args.candidates,
              "std": args.std, "action_repeat": args.action_repeat, "seed": args.seed, "cost": args.cost,
              "cost_blur": args.cost_blur if args.cost == "image" else None,
              "sampling_steps": described["sampling_steps"], "cfg_scale": described["cfg_scale"],
              "rows": rows, "mean": means}
    atomic_write_text(args.json, json.dumps(result, indent=2))
    scores = ", ".join(f"{name} {value:.2f}" for name, value in means.items())
    print(f"mean Spearman: {scores}; wrote {args.json}")


if __name__ == "__main__":
    main()
