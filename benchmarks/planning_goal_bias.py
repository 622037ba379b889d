"""Where does a world model's goal cost have its minimum when the robot already stands at the goal?

    python benchmarks/planning_goal_bias.py [--checkpoint flow-default] [--episodes 6]
                                            [--json benchmarks/results/planning_goal_bias.json]

A diagnostic for the planning benchmark. For each of its seeded goals, the simulator is driven
to the goal pose and held there until it settles (`--settle` frames); those frames are the
context and the goal image. Then, one camera joint at a time, the goal command is offset by
`delta` in [-range, range] and held for `action_repeat` frames, and the goal cost (the
benchmark's: latent MSE, or with `--cost image` the blurred-image MSE) is computed from the world
model's prediction and from the frame the simulator renders. The simulator's cost is smallest at delta = 0 (holding still keeps the goal
view); where the model's is smallest is where an MPC planner using it comes to rest, so
|argmin| is the error the model builds into planning, whatever the planner and its budget.
Ties (a joint at its limit leaves the view unchanged) resolve to the offset nearest 0; offsets
are reported in action units and in radians (half the joint's range per action unit), the
latter comparable with the benchmark's 0.03 rad success threshold. It also scores the model's
frame after holding the goal command itself (`still_psnr`): nothing moves, so the truth is the
goal frame, and the tokenizer's reconstruction of it (`still_recon_psnr`) is the ceiling;
`costs` keeps both cost curves over the offsets (a flat one has no slope to plan on).
`still_psnr_per_step` follows the rollout step by step, which shows whether its own small
errors, read back as motion, grow into drift. With continuous latents, `response_ratio` compares
how far the model's predicted latent moves at the two end offsets with how far the simulator's
frame's latent does (per joint, summed over the episodes): below 1, the model under-predicts the
motion a command causes, so a small drift moves its cost's minimum far.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from models.atomic import atomic_write_text
from planners.benchmark import add_diagnostic_arguments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="flow-default", help="Flow-HWM or Masked-HWM checkpoint")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--range", type=float, default=0.15, help="largest command offset, action units")
    parser.add_argument("--points", type=int, default=13, help="offsets from -range to range")
    parser.add_argument("--settle", type=int, default=30, help="frames held at the goal before the test")
    parser.add_argument("--still-steps", type=int, default=8,
                        help="model steps of the still-robot rollout scored per step (at least one hold)")
    add_diagnostic_arguments(parser, "benchmarks/results/planning_goal_bias.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from hwm_env.context import drive_sim
    from hwm_env.sim.dynamics import SimDynamics
    from hwm_env.sim.env import HWMSimEnv
    from models.checkpoint import read_config, resolve_checkpoint
    from planners.benchmark import (
        VIEW_JOINT_NAMES, HeldActionDynamics, Protocol, WorldModelPlanning, make_episodes, view_joints,
    )
    from planners.costs import ImageGoalCost, LatentGoalCost
    from planners.dynamics import WorldModelDynamics
    from train.metrics import psnr

    family = read_config(resolve_checkpoint(args.checkpoint)).get("family")
    planning = WorldModelPlanning(family, args.checkpoint, sampling_steps=args.sampling_steps)
    env = HWMSimEnv(resolution=planning.tokenizer.image_size[0])
    episodes = make_episodes(env, Protocol(episodes=args.episodes, seed=args.seed), progress=True)
    deltas = np.linspace(-args.range, args.range, args.points)
    half_ranges = (env.joint_ranges[:, 1] - env.joint_ranges[:, 0]) / 2.0  # rad per action unit
    simulator = HeldActionDynamics(SimDynamics(env), args.action_repeat)  # the oracle's rollouts: the frame after each hold

    def argmin_offset(costs: torch.Tensor) -> float:
        costs = costs.double().numpy()
        tied = np.flatnonzero(np.isclose(costs, costs.min(), rtol=1e-6, atol=0.0))
        return float(deltas[tied[np.argmin(np.abs(deltas[tied]))]])

    def still_prediction(dynamics, state, command: np.ndarray, frame: np.ndarray) -> dict:
        """PSNR of the model's frames while the goal command is held (the truth: `frame`, unchanged).

        `still_psnr_per_step`: each of the rollout's `--still-steps` model steps; `still_psnr`: the
        end of one hold (what the planner's cost sees).
        """
        steps = max(args.still_steps, dynamics.repeat)
        predicted = dynamics.dynamics.rollout(state, torch.from_numpy(np.repeat(command[None, None], steps, 1)))
        truth = torch.from_numpy(frame)[None]
        per_step = psnr(planning.tokenizer.decode(predicted)[0], truth.expand(steps, -1, -1, -1))
        reconstruction = planning.tokenizer.decode(planning.tokenizer.encode(truth[:, None]))[:, 0]
        return {"still_psnr": float(per_step[dynamics.repeat - 1]), "still_psnr_per_step": per_step.tolist(),
                "still_recon_psnr": float(psnr(reconstruction, truth)[0])}

    center = int(np.argmin(np.abs(deltas)))

    def encode(frames) -> torch.Tensor:
        return planning.tokenizer.encode(torch.as_tensor(np.asarray(frames))[:, None])[:, 0]

    def latent_move(latents: torch.Tensor) -> torch.Tensor:
        """Mean latent distance of the two end offsets' frames from the unmoved one's."""
        return (latents[[0, -1]] - latents[center]).flatten(1).norm(dim=1).mean()

    rows = []
    for episode in episodes:
        env.set_state(episode.start)
        goal_command = env.action_from_state(episode.goal_state).astype(np.float32)
        settled = drive_sim(env, lambda: goal_command, args.settle)
        at_goal = env.get_state()
        state = planning.start_context(settled.frames, settled.actions)(env, settled.frames[-1], {})
        dynamics = HeldActionDynamics(
            WorldModelDynamics(planning.model, steps=args.sampling_steps, seed=episode.planner_seed),
            planning.model_steps_per_hold(args.action_repeat),
        )
        if args.cost == "image":
            cost = ImageGoalCost(settled.frames[-1], planning.tokenizer, blur_sigma=args.cost_blur)
        else:
            cost = LatentGoalCost.from_image(planning.tokenizer, settled.frames[-1])
        row = {"episode": episode.index, "model_argmin": {}, "simulator_argmin": {}, "model_argmin_rad": {},
               "simulator_argmin_rad": {}, "latent_move": {"model": {}, "simulator": {}},
               "costs": {"model": {}, "simulator": {}},
               **still_prediction(dynamics, state, goal_command, settled.frames[-1])}
        for name, joint in zip(VIEW_JOINT_NAMES, view_joints()):
            actions = np.repeat(goal_command[None], len(deltas), axis=0)
            actions[:, joint] += deltas
            held = torch.from_numpy(actions[:, None])
            predicted, rendered = dynamics.rollout(state, held), simulator.rollout(at_goal, held)
            model_cost, simulator_cost = cost(predicted).float(), cost(rendered).float()
            if predicted.is_floating_point():  # continuous latents: how far each moves at the range's ends
                for source, latents in (("model", predicted[:, -1]), ("simulator", encode(rendered[:, -1]))):
                    row["latent_move"][source][name] = float(latent_move(latents))
            for source, costs in (("model", model_cost), ("simulator", simulator_cost)):
                row["costs"][source][name] = costs.tolist()  # over `deltas`: the shape of the basin
                offset = argmin_offset(costs)
                row[f"{source}_argmin"][name] = offset
                row[f"{source}_argmin_rad"][name] = float(offset * half_ranges[joint])
        rows.append(row)
        print(f"episode {episode.index}: argmin offset (action units), model "
              f"{[round(v, 3) for v in row['model_argmin'].values()]}, simulator "
              f"{[round(v, 3) for v in row['simulator_argmin'].values()]}", flush=True)
    mean_abs = {source: float(np.mean([abs(v) for row in rows for v in row[source].values()]))
                for source in ("model_argmin", "simulator_argmin", "model_argmin_rad", "simulator_argmin_rad")}
    still = {key: float(np.mean([row[key] for row in rows])) for key in ("still_psnr", "still_recon_psnr")}
    still["still_psnr_per_step"] = np.mean([row["still_psnr_per_step"] for row in rows], axis=0).tolist()
    # the model's response to a command offset against the simulator's, per joint (sums over the episodes)
    response = {name: sum(row["latent_move"]["model"][name] for row in rows)
                / max(sum(row["latent_move"]["simulator"][name] for row in rows), 1e-12)
                for name in rows[0]["latent_move"]["model"]}
    result = {"checkpoint": args.checkpoint, "episodes": args.episodes, "deltas": deltas.tolist(),
              "sampling_steps": planning.describe()["sampling_steps"], "cost": args.cost,
              "cost_blur": args.cost_blur if args.cost == "image" else None,
              "settle": args.settle, "action_repeat": args.action_repeat, "seed": args.seed,
              "rows": rows, "mean_abs_argmin": mean_abs, "mean_still_psnr": still, "response_ratio": response}
    atomic_write_text(args.json, json.dumps(result, indent=2))
    print(f"mean |argmin offset|: model {mean_abs['model_argmin']:.3f}, simulator {mean_abs['simulator_argmin']:.3f} "
          f"action units (grid step {deltas[1] - deltas[0]:.3f}); model {mean_abs['model_argmin_rad']:.3f}, simulator "
          f"{mean_abs['simulator_argmin_rad']:.3f} rad; still robot, next frame: model {still['still_psnr']:.2f} dB "
          f"(tokenizer reconstruction {still['still_recon_psnr']:.2f} dB), per model step "
          f"{[round(value, 2) for value in still['still_psnr_per_step']]}; model / simulator latent move at "
          f"+-{args.range:g}: {({name: round(value, 2) for name, value in response.items()})}; wrote {args.json}")


if __name__ == "__main__":
    main()
