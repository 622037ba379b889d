"""One run of the experiment: train and score every row, write results.json and results.md."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
from pathlib import Path
from typing import Any, Callable

import torch

from models.atomic import atomic_write_text
from planners.benchmark import make_episodes
from train.policy.commander import Commander
from train.policy.data_goals import DataGoals
from train.policy.observation import GoalObservation, LatentFeatures
from train.policy.ppo import make_ppo, save_policy, start_wandb, train_ppo
from train.policy.report import markdown_table
from train.policy.scoring import evaluate_in_sim, hold_actor, ppo_actor, random_actor, summarize
from train.policy.settings import FAMILY_LABELS, POLICY_LABELS, PolicyExperiment
from train.policy.worlds import SimGoalReaching, make_imagination_env

RESULTS_JSON, RESULTS_MARKDOWN = "results.json", "results.md"


def write_results(out: Path, results: dict) -> None:
    """results.json and results.md, each written to a temp file and renamed."""
    for name, text in ((RESULTS_JSON, json.dumps(results, indent=2)), (RESULTS_MARKDOWN, markdown_table(results))):
        atomic_write_text(out / name, text + "\n")


def run_policy_experiment(experiment: PolicyExperiment, log: Callable[[str], None] = print) -> dict:
    """Train and score every row of `experiment`; writes results.json, results.md and the policies into `out`."""
    from hwm_env.sim.env import HWMSimEnv
    from hwm_env.world_model_env import resolve_device
    from models.checkpoint import frame_stride as checkpoint_frame_stride, read_config, resolve_checkpoint
    from models.loading import nested_tokenizer_dir
    from models.tokenizers import load_tokenizer

    checkpoint = resolve_checkpoint(experiment.checkpoint_name)
    config = read_config(checkpoint)
    if config.get("family") != experiment.model:
        raise ValueError(f"{checkpoint}: is a '{config.get('family')}' checkpoint, --model {experiment.model} "
                         f"needs a '{experiment.model}' one")
    device = resolve_device(experiment.device)
    tokenizer = load_tokenizer(nested_tokenizer_dir(checkpoint), device=device)  # the policy sees frames through it
    num_past, action_dim = int(config["num_past"]), int(config["action_dim"])
    frame_stride = checkpoint_frame_stride(config, checkpoint)
    goals = DataGoals(experiment.data, num_past, tokenizer.image_size, action_dim, experiment.task, frame_stride)
    data_frames = goals.num_frames
    real_budget = experiment.real_budget or data_frames
    features = LatentFeatures(tokenizer)
    out = Path(experiment.out)
    out.mkdir(parents=True, exist_ok=True)
    sim_policy = experiment.policies[0]

    results: dict[str, Any] = {
        "experiment": json.loads(json.dumps(dataclasses.asdict(experiment), default=str)),
        "world_model": {"family": experiment.model, "checkpoint": str(checkpoint), "num_past": num_past,
                        "frame_stride": frame_stride},
        "data": {"path": str(goals.path), "train_frames": data_frames},
        "real_budget": real_budget,
        "reward": "minus the mean squared latent distance of the current frame to the goal image "
                  "(world model's tokenizer; FSQ codes for tokens)",
        "protocol": dataclasses.asdict(experiment.protocol),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": device,
                    "torch_threads": torch.get_num_threads()},
        "rows": [],
    }
    wandb_run = start_wandb(experiment, out) if experiment.wandb else None
    sim = HWMSimEnv(resolution=int(tokenizer.image_size[0]))
    try:
        from hwm_env.tasks import make_task

        episodes = make_episodes(sim, make_task(experiment.protocol.task), experiment.protocol,
                                 progress=experiment.progress, domain="policy-scoring")
        log(f"{len(episodes)} '{experiment.protocol.task}' scoring episodes (policy-scoring seed set "
            f"{experiment.protocol.seed_set}); world model {checkpoint}; "
            f"data {goals.path} ({data_frames} frames); real budget {real_budget} frames")

        commander = Commander(action_dim, experiment.task, sim.action_space.low, sim.action_space.high)

        def evaluate(act, policy: str, description: str) -> dict:
            observation = GoalObservation(policy, features.dim, tokenizer.image_size, sim.action_space.low,
                                          sim.action_space.high)
            return evaluate_in_sim(act, episodes, sim, features, observation, commander, experiment.protocol,
                                   frame_stride, description, experiment.progress)

        def finish(summary: dict) -> None:
            results["rows"].append(summary)
            write_results(out, results)
            if wandb_run is not None:
                wandb_run.log({f"{summary['row']}/success_rate": summary["success_rate"],
                               f"{summary['row']}/final_error_mean": summary["final_error_mean"]})
            log(f"{summary['row']}: success {summary['success_rate']:.2f}, final task error "
                f"{summary['final_error_mean']:.3f}")

        for row in experiment.rows:
            if row == "imagination":
                for policy in experiment.policies:
                    name = f"imagination-{policy}"
                    venv = make_imagination_env(experiment, policy, experiment.seed)
                    try:
                        model = make_ppo(venv, policy, experiment.ppo, experiment.seed, device)
                        seconds = train_ppo(model, experiment.imagination_steps, out / name,
                                            f"{name} (imagined frames)", progress=experiment.progress,
                                            wandb_run=wandb_run, prefix=name)
                    finally:
                        venv.close()
                    policy_file = save_policy(model, out / f"{name}.zip")
                    evaluation = evaluate(ppo_actor(model), policy, f"{name} in HWM-Sim-v0")
                    finish(summarize(name, POLICY_LABELS[policy], f"{FAMILY_LABELS[experiment.model]} imagination",
                                     evaluation, experiment.protocol, real_frames=data_frames,
                                     real_frames_note="the world model's training data; no simulator frames",
                                     imagined_frames=int(model.num_timesteps), train_seconds=seconds,
                                     policy_file=str(policy_file)))
            elif row in ("sim-budget", "sim-unlimited"):
                budget = real_budget if row == "sim-budget" else experiment.upper_bound_steps
                name = f"{row}-{sim_policy}"
                venv = SimGoalReaching(experiment.sim_envs, tokenizer, sim_policy, experiment.task, num_past,
                                       frame_stride, seed=experiment.seed)
                try:
                    model = make_ppo(venv, sim_policy, experiment.ppo, experiment.seed, device)
                    seconds = train_ppo(model, budget, out / name, f"{name} (real frames)",
                                        count=lambda: venv.real_frames, budget=budget, progress=experiment.progress,
                                        wandb_run=wandb_run, prefix=name)
                finally:
                    venv.close()
                policy_file = save_policy(model, out / f"{name}.zip")
                evaluation = evaluate(ppo_actor(model), sim_policy, f"{name} in HWM-Sim-v0")
                trained_in = "HWM-Sim-v0, " + ("same real budget" if row == "sim-budget" else "unlimited (upper bound)")
                finish(summarize(name, POLICY_LABELS[sim_policy], trained_in, evaluation, experiment.protocol,
                                 real_frames=int(venv.real_frames), real_budget=budget,
                                 imagined_frames=0, policy_steps=int(model.num_timesteps), train_seconds=seconds,
                                 policy_file=str(policy_file)))
            else:
                controlled = commander.space.shape[0]
                act = random_actor(controlled) if row == "random" else hold_actor(controlled)
                evaluation = evaluate(act, sim_policy, f"{row} in HWM-Sim-v0")
                label = "random policy (uniform u)" if row == "random" else "hold start pose (u = 0)"
                finish(summarize(row, label, "-", evaluation, experiment.protocol, real_frames=0, imagined_frames=0,
                                 train_seconds=0.0))
    finally:
        sim.close()
        if wandb_run is not None:
            wandb_run.finish()
    return results
