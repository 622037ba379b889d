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
from train.policy.settings import PolicyExperiment, PPOSettings


class TrainingProgress(BaseCallback):
    """A tqdm bar over imagined or real frames; stops once `budget` frames are used; saves `snapshots` on the way.

    The bar shows the mean reward of the last step of recent episodes (minus the task error
    there, as that world measures it). Snapshots: the policy at `snapshot_steps` (SB3 zips
    `snapshot_dir/step-<N>.zip`), the checkpoints `hwm bench policies` ranks.
    """

    def __init__(self, total: int, description: str, count: Callable[[], int] | None = None,
                 budget: int | None = None, enabled: bool = True, snapshot_steps=(), snapshot_dir: Path | None = None,
                 about: dict | None = None):
        super().__init__()
        self.total, self.description, self.count, self.budget, self.enabled = total, description, count, budget, enabled
        self.final_rewards: list[float] = []
        self.snapshot_steps, self.snapshot_dir = sorted(snapshot_steps), snapshot_dir
        self.snapshots: list[str] = []
        self.about = about

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc=self.description, unit="frame", disable=not self.enabled,
                        dynamic_ncols=True)
        self.shown = 0

    def _on_step(self) -> bool:
        used = self.count() if self.count is not None else self.num_timesteps
        self.bar.update(used - self.shown)
        self.shown = used
        dones = np.asarray(self.locals["dones"], bool)
        self.final_rewards += np.asarray(self.locals["rewards"], np.float64)[dones].tolist()
        if self.final_rewards and self.n_calls % 16 == 0:
            recent = float(np.mean(self.final_rewards[-256:]))
            self.bar.set_postfix(final_reward=f"{recent:.4f}")
            self.logger.record("rollout/final_reward", recent)
        while self.snapshot_steps and used >= self.snapshot_steps[0]:
            self.snapshot_steps.pop(0)
            self.snapshot_dir.mkdir(parents=True, exist_ok=True)
            self.snapshots.append(str(save_policy(self.model, self.snapshot_dir / f"step-{used}.zip", self.about)))
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


def make_ppo(venv: VecEnv, settings: PPOSettings, seed: int):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    hidden = [settings.hidden, settings.hidden]
    return PPO(
        "MlpPolicy", VecMonitor(venv), n_steps=settings.n_steps, batch_size=settings.batch_size,
        n_epochs=settings.n_epochs, learning_rate=settings.learning_rate, gamma=settings.gamma,
        gae_lambda=settings.gae_lambda, clip_range=settings.clip_range, ent_coef=settings.ent_coef,
        policy_kwargs={"log_std_init": settings.log_std_init, "net_arch": {"pi": hidden, "vf": hidden}},
        seed=seed, device="cpu", verbose=0,  # a 2x256 MLP: faster on the CPU than the transfers to a GPU
    )


def train_ppo(model, total_timesteps: int, log_dir: Path, description: str, *, count=None, budget=None,
              progress: bool = True, wandb_run=None, prefix: str = "", snapshots: int = 0,
              about: dict | None = None) -> tuple[float, list[str]]:
    """model.learn with a CSV log (and wandb) in `log_dir`, a progress bar and `snapshots` evenly spaced policy
    checkpoints (the last at the end); returns (wall-clock seconds, snapshot files)."""
    from stable_baselines3.common.logger import configure

    logger = configure(str(log_dir), ["csv"])
    if wandb_run is not None:
        logger.output_formats.append(WandbOutput(wandb_run, prefix))
    model.set_logger(logger)
    total = budget if budget is not None else total_timesteps
    steps = [round(total * (k + 1) / snapshots) for k in range(snapshots - 1)] if snapshots > 1 else []
    callback = TrainingProgress(total, description, count, budget, progress, steps, log_dir / "snapshots", about)
    start = time.perf_counter()
    try:
        model.learn(total_timesteps, callback=callback)
    finally:
        logger.close()  # flush and close progress.csv (an open file would leak until garbage collection)
    return time.perf_counter() - start, callback.snapshots


def save_policy(model, path: Path, about: dict | None = None) -> Path:
    """SB3's `model.save` zip, written atomically (never a half-written file), and `about` beside it as JSON.

    `about` (`PolicySetup.about`: task, observation size, probe, controlled joints) is what
    `load_policy` checks before a policy meets an env it was not trained for.
    """
    from models.atomic import atomic_write_text

    path = atomic_write(path, model.save, suffix=".zip")
    if about is not None:
        atomic_write_text(path.with_suffix(".json"), json.dumps(about, indent=2) + "\n")
    return path


def load_policy(path: str | Path, about: dict):
    """A PPO zip saved by `save_policy`, checked against `about` (the env's); ValueError naming the field."""
    from stable_baselines3 import PPO

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file '{path}' does not exist")
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise ValueError(f"{path}: no '{sidecar.name}' beside it: the task and observation it was trained for are "
                         "unknown (policies of `hwm train policy` have one)")
    saved = json.loads(sidecar.read_text())
    for key, expected in about.items():
        if saved.get(key) != expected:
            raise ValueError(f"{sidecar}: '{key}' is {saved.get(key)!r}, this env needs {expected!r}")
    model = PPO.load(str(path), device="cpu")
    if model.observation_space.shape != (about["observation_size"],):
        raise ValueError(f"{path}: observation space {model.observation_space.shape}, this env's is "
                         f"({about['observation_size']},)")
    return model
