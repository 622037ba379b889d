"""PPO (stable-baselines3) for every trained row: construction, training with a progress bar and logs, saving."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter
from stable_baselines3.common.vec_env import VecEnv

from models.atomic import atomic_write
from train.policy.settings import SB3_POLICY, PolicyExperiment, PPOSettings


class TrainingProgress(BaseCallback):
    """A tqdm bar over imagined or real frames; stops training once `budget` frames are used."""

    def __init__(self, total: int, description: str, count: Callable[[], int] | None = None,
                 budget: int | None = None, enabled: bool = True):
        super().__init__()
        self.total, self.description, self.count, self.budget, self.enabled = total, description, count, budget, enabled
        self.final_distances: list[float] = []

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc=self.description, unit="frame", disable=not self.enabled,
                        dynamic_ncols=True)
        self.shown = 0

    def _on_step(self) -> bool:
        used = self.count() if self.count is not None else self.num_timesteps
        self.bar.update(used - self.shown)
        self.shown = used
        self.final_distances += [info["final_distance"] for info in self.locals["infos"] if "final_distance" in info]
        if self.final_distances and self.n_calls % 16 == 0:
            recent = float(np.mean(self.final_distances[-64:]))
            self.bar.set_postfix(final_latent_distance=f"{recent:.4f}")
            self.logger.record("rollout/final_latent_distance", recent)
        return self.budget is None or used < self.budget

    def _on_training_end(self) -> None:
        self.bar.close()


class WandbOutput(KVWriter):
    """Forwards SB3's logged values to a wandb run under the row's name."""

    def __init__(self, run, prefix: str):
        self.run, self.prefix = run, prefix

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        values = {f"{self.prefix}/{key}": float(value) for key, value in key_values.items()
                  if isinstance(value, (int, float, np.number)) and not isinstance(value, bool)}
        self.run.log({**values, f"{self.prefix}/timesteps": step})

    def close(self) -> None:
        pass


def start_wandb(experiment: PolicyExperiment, out: Path):
    try:
        import wandb
    except ImportError as error:
        raise ValueError("--wandb needs the wandb package: pip install 'humanoid-world-models[wandb]'") from error
    return wandb.init(project=experiment.wandb_project, dir=str(out), name=out.name,
                      config=json.loads(json.dumps(dataclasses.asdict(experiment), default=str)))


def make_ppo(venv: VecEnv, policy: str, settings: PPOSettings, seed: int, device: str):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    hidden = [settings.hidden, settings.hidden]
    return PPO(
        SB3_POLICY[policy], VecMonitor(venv), n_steps=settings.n_steps, batch_size=settings.batch_size,
        n_epochs=settings.n_epochs, learning_rate=settings.learning_rate, gamma=settings.gamma,
        gae_lambda=settings.gae_lambda, clip_range=settings.clip_range, ent_coef=settings.ent_coef,
        policy_kwargs={"log_std_init": settings.log_std_init, "net_arch": {"pi": hidden, "vf": hidden}},
        seed=seed, device=("cpu" if policy == "mlp" else device), verbose=0,
    )


def train_ppo(model, total_timesteps: int, log_dir: Path, description: str, *, count=None, budget=None,
              progress: bool = True, wandb_run=None, prefix: str = "") -> float:
    """model.learn with a CSV log (and wandb) in `log_dir` and a progress bar; returns wall-clock seconds."""
    from stable_baselines3.common.logger import configure

    logger = configure(str(log_dir), ["csv"])
    if wandb_run is not None:
        logger.output_formats.append(WandbOutput(wandb_run, prefix))
    model.set_logger(logger)
    total = budget if budget is not None else total_timesteps
    start = time.perf_counter()
    try:
        model.learn(total_timesteps, callback=TrainingProgress(total, description, count, budget, progress))
    finally:
        logger.close()  # flush and close progress.csv (an open file would leak until garbage collection)
    return time.perf_counter() - start


def save_policy(model, path: Path) -> Path:
    """SB3's `model.save` zip, written atomically (never a half-written file)."""
    return atomic_write(path, model.save, suffix=".zip")
