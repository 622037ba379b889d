"""One run of `hwm train policy --task T`: train and score every row, write results.json and results.md."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
from pathlib import Path
from typing import Any, Callable

import torch

from models.atomic import atomic_write_text
from train.policy.commander import Commander
from train.policy.observation import TaskObservation
from train.policy.policies import hold_policy, ppo_policy, random_policy
from train.policy.ppo import make_ppo, save_policy, start_wandb, train_ppo
from train.policy.report import markdown_table
from train.policy.scoring import score_in_sim, summarize
from train.policy.settings import FAMILY_LABELS, PolicyExperiment
from train.policy.worlds import ImaginedTask, SimTask, draw_task_starts

RESULTS_JSON, RESULTS_MARKDOWN = "results.json", "results.md"


def write_results(out: Path, results: dict) -> None:
    """results.json and results.md, each written to a temp file and renamed."""
    for name, text in ((RESULTS_JSON, json.dumps(results, indent=2)), (RESULTS_MARKDOWN, markdown_table(results))):
        atomic_write_text(out / name, text + "\n")


def training_frames(data: str | os.PathLike, image_size) -> tuple[Path, int]:
    """(the training split, its frame count): the real frames the world model learned from."""
    from models.data.open import find_splits, open_split, split_format

    path = Path(data).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--data '{path}' does not exist (expected the world model's data set root or its "
                                "train split)")
    if split_format(path) is None:
        path = find_splits(path)[0]  # a data set root: its training split
    split = open_split(path, image_size=tuple(image_size))
    return path, int(getattr(split, "num_frames", None) or len(split))


class PolicySetup:
    """What every row shares: the task, probe, commander, observation, scoring episodes and world-model settings."""

    def __init__(self, experiment: PolicyExperiment):
        from hwm_env.sim.env import HWMSimEnv
        from hwm_env.tasks import make_task
        from hwm_env.world_model_env import resolve_device
        from models.checkpoint import frame_stride, read_config, resolve_checkpoint
        from models.probe import load_probe
        from planners.benchmark import make_episodes
        from planners.task_cost import check_probe_for_task

        self.experiment = experiment
        self.task = make_task(experiment.task)
        self.checkpoint = resolve_checkpoint(experiment.checkpoint_name)
        config = read_config(self.checkpoint)
        if config.get("family") != experiment.model:
            raise ValueError(f"{self.checkpoint}: is a '{config.get('family')}' checkpoint, --model "
                             f"{experiment.model} needs a '{experiment.model}' one")
        self.frame_stride = frame_stride(config, self.checkpoint)
        self.device = resolve_device(experiment.device)
        self.probe = load_probe(experiment.probe, device=self.device)
        check_probe_for_task(self.probe, self.task, experiment.probe)  # names the targets a probe lacks
        self.resolution = int(self.probe.image_size[0])
        self.commander = Commander(self.task.controlled, experiment.control)
        self.sim = HWMSimEnv(resolution=self.resolution)
        self.episodes = make_episodes(self.sim, self.task, experiment.scoring, progress=experiment.progress,
                                      domain="policy-scoring")
        self.observation = TaskObservation.for_episode(self.task, self.probe, self.commander,
                                                       self.episodes[0].task_episode)
        self.about = {"task": self.task.name, "observation_size": self.observation.size,
                      "probe": experiment.probe, "controlled": [int(i) for i in self.commander.dims],
                      "control": dataclasses.asdict(experiment.control)}
        self.world_model = {"checkpoint": str(self.checkpoint), "device": self.device, "probe": experiment.probe,
                            "steps": experiment.sampling_steps, "precision": experiment.precision}

    def score(self, policy, description: str) -> dict:
        return score_in_sim(policy, self.episodes, self.sim, self.observation, self.commander,
                            self.experiment.scoring.steps, self.frame_stride, description, self.experiment.progress)

    def imagination_env(self, pool, num_envs: int, horizon: int, seed: int) -> ImaginedTask:
        return ImaginedTask(self.task, pool, self.observation, self.commander, num_envs, horizon, seed=seed,
                            **self.world_model)

    def sim_env(self, num_envs: int, horizon: int, seed: int) -> SimTask:
        return SimTask(self.task, self.observation, self.commander, num_envs, horizon, self.resolution, seed=seed)

    def close(self) -> None:
        self.sim.close()


def run_policy_experiment(experiment: PolicyExperiment, log: Callable[[str], None] = print) -> dict:
    """Train and score every row of `experiment`; writes results.json, results.md and the policies into `out`."""
    setup = PolicySetup(experiment)
    out = Path(experiment.out)
    out.mkdir(parents=True, exist_ok=True)
    wandb_run = None
    try:
        data_path, data_frames = training_frames(experiment.data, setup.probe.image_size)
        pool, pool_frames = draw_task_starts(setup.task, experiment.pool_episodes, experiment.seed, setup.resolution,
                                             experiment.progress)
        imagination_real = data_frames + pool_frames
        real_budget = experiment.real_budget or imagination_real
        results: dict[str, Any] = {
            "experiment": json.loads(json.dumps(dataclasses.asdict(experiment), default=str)),
            "world_model": {"family": experiment.model, "checkpoint": str(setup.checkpoint),
                            "frame_stride": setup.frame_stride},
            "data": {"path": str(data_path), "train_frames": data_frames},
            "pool": {"episodes": len(pool), "real_frames": pool_frames},
            "real_budget": real_budget,
            "scoring": dataclasses.asdict(experiment.scoring),
            "observation": {"size": setup.observation.size, "probe_targets": len(setup.probe.target_names),
                            "controlled": [int(i) for i in setup.commander.dims]},
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": setup.device,
                        "torch_threads": torch.get_num_threads()},
            "rows": [],
        }
        log(f"{len(setup.episodes)} '{experiment.task}' scoring episodes (policy-scoring set "
            f"{experiment.scoring.seed_set}); world model {setup.checkpoint}; data {data_path} ({data_frames} "
            f"frames) + {len(pool)} real task starts ({pool_frames} frames); sim-budget {real_budget} frames")
        wandb_run = start_wandb(experiment, out) if experiment.wandb else None
        size = setup.commander.space.shape[0]

        def finish(summary: dict) -> None:
            results["rows"].append(summary)
            write_results(out, results)
            if wandb_run is not None:
                wandb_run.log({f"{summary['row']}/success_rate": summary["success_rate"],
                               f"{summary['row']}/final_error_mean": summary["final_error_mean"]})
            log(f"{summary['row']}: success {summary['successes']}/{summary['episodes']}, final task error "
                f"{summary['final_error_mean']:.3f}")

        def train_row(name: str, venv, steps: int, unit: str, count=None, budget=None, snapshots: int = 0):
            try:
                model = make_ppo(venv, experiment.ppo, experiment.seed)
                seconds, files = train_ppo(model, steps, out / name, f"{name} ({unit})", count=count, budget=budget,
                                           progress=experiment.progress, wandb_run=wandb_run, prefix=name,
                                           snapshots=snapshots, about=setup.about)
            finally:
                venv.close()
            policy_file = save_policy(model, out / f"{name}.zip", setup.about)
            return model, seconds, files, policy_file

        for row in experiment.rows:
            if row == "imagination":
                venv = setup.imagination_env(pool, experiment.num_envs, experiment.horizon, experiment.seed)
                model, seconds, files, policy_file = train_row(row, venv, experiment.imagination_steps,
                                                               "imagined frames", snapshots=experiment.snapshots)
                evaluation = setup.score(ppo_policy(model), f"{row} in HWM-Sim-v0")
                finish(summarize(row, "PPO", f"{FAMILY_LABELS[experiment.model]} imagination", evaluation,
                                 experiment.task, real_frames=imagination_real, imagined_frames=int(model.num_timesteps),
                                 train_seconds=seconds, policy_file=str(policy_file), snapshots=files))
            elif row in ("sim-budget", "sim-unlimited"):
                budget = real_budget if row == "sim-budget" else experiment.upper_bound_steps
                venv = setup.sim_env(experiment.sim_envs, experiment.horizon, experiment.seed)
                model, seconds, _, policy_file = train_row(row, venv, budget, "real frames",
                                                           count=lambda: venv.real_frames, budget=budget)
                evaluation = setup.score(ppo_policy(model), f"{row} in HWM-Sim-v0")
                trained_in = "HWM-Sim-v0, " + ("same real budget" if row == "sim-budget" else "upper bound")
                finish(summarize(row, "PPO", trained_in, evaluation, experiment.task, real_frames=int(venv.real_frames),
                                 imagined_frames=0, policy_steps=int(model.num_timesteps), train_seconds=seconds,
                                 policy_file=str(policy_file)))
            elif row == "scripted":
                evaluation = scripted_in_sim(setup)
                finish(summarize(row, "scripted (privileged: reads the simulator's state)", "-", evaluation,
                                 experiment.task, real_frames=0, imagined_frames=0, train_seconds=0.0))
            else:
                policy = random_policy(size) if row == "random" else hold_policy(size)
                evaluation = setup.score(policy, f"{row} in HWM-Sim-v0")
                label = "random (uniform u)" if row == "random" else "hold the start pose (u = 0)"
                finish(summarize(row, label, "-", evaluation, experiment.task, real_frames=0, imagined_frames=0,
                                 train_seconds=0.0))
    finally:
        setup.close()
        if wandb_run is not None:
            wandb_run.finish()
    return results


def scripted_in_sim(setup: PolicySetup) -> dict:
    """The task's privileged scripted controller on the scoring episodes (the planning benchmark's `scripted` row)."""
    import time

    from planners.benchmark.runner import run_baseline_episode

    start = time.perf_counter()
    results = [run_baseline_episode(setup.sim, setup.task, episode, "scripted", setup.experiment.scoring)
               for episode in setup.episodes]
    return {"errors": [result.error for result in results], "successes": [result.success for result in results],
            "seconds": time.perf_counter() - start}
