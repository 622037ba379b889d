"""Env steps/s of HWM-Flow-v0 / HWM-Masked-v0 beside HWM-Sim-v0, measured in the same run.

    python benchmarks/env_speed.py [--checkpoint-flow C] [--checkpoint-masked C] [--json OUT.json]

Rows: the simulator (64 px, rendering included); per world-model family a single env in
`rgb` mode (predict + decode) and `latent` mode (predict only), and the vector env at 16
and 64 envs in `latent` mode (one batched model call per step). Timing covers `step`
only, after a warm-up, with seeded uniform random actions; episodes are not truncated
inside the timed window. Writes JSON and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from models import tables
from models.atomic import atomic_write_text

def time_steps(step, num_steps: int, warmup: int = 3) -> float:
    """Seconds for `num_steps` calls of `step()` after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(num_steps):
        step()
    return time.perf_counter() - start


def bench_sim(resolution: int, num_steps: int) -> dict:
    from hwm_env.sim.env import HWMSimEnv

    env = HWMSimEnv(resolution=resolution)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    seconds = time_steps(lambda: env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)), num_steps)
    env.close()
    return {"env": "HWM-Sim-v0", "mode": f"rgb {resolution}px", "num_envs": 1,
            "steps_per_s": num_steps / seconds, "ms_per_step": 1000 * seconds / num_steps}


def bench_single(checkpoint: str, obs_mode: str, num_steps: int, device: str) -> dict:
    from hwm_env.world_model_env import HWMEnv

    env = HWMEnv(checkpoint=checkpoint, obs_mode=obs_mode, device=device)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    seconds = time_steps(lambda: env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)), num_steps)
    env.close()
    return {"mode": obs_mode, "num_envs": 1, "steps_per_s": num_steps / seconds, "ms_per_step": 1000 * seconds / num_steps}


def bench_vector(checkpoint: str, num_envs: int, num_steps: int, device: str) -> dict:
    from hwm_env.vector_env import HWMVectorEnv

    envs = HWMVectorEnv(num_envs=num_envs, checkpoint=checkpoint, obs_mode="latent", device=device)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    seconds = time_steps(lambda: envs.step(rng.uniform(-1, 1, envs.action_space.shape).astype(np.float32)), num_steps,
                         warmup=1)
    envs.close()
    return {"mode": "latent (vector)", "num_envs": num_envs, "steps_per_s": num_envs * num_steps / seconds,
            "ms_per_step": 1000 * seconds / num_steps}


def markdown_table(rows: list[dict]) -> str:
    cells = [[row["env"], row["mode"], row["num_envs"], f"{row['steps_per_s']:.1f}", f"{row['ms_per_step']:.1f}"]
             for row in rows]
    return tables.markdown_table(["env", "mode", "envs", "env steps/s", "ms per step call"], cells, align="llrrr")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint-flow", default="flow-default")
    parser.add_argument("--checkpoint-masked", default="masked-default")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per row (default 50)")
    parser.add_argument("--num-envs", type=int, nargs="*", default=[16, 64], help="vector env sizes (default 16 64)")
    parser.add_argument("--vector-steps", type=int, default=10, help="timed steps per vector row (default 10)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the CPU budget)")
    parser.add_argument("--json", default="env_speed.json", help="results file, written after every row (default: env_speed.json here)")
    args = parser.parse_args(argv)

    import torch
    from tqdm import tqdm

    import hwm_env  # noqa: F401  (headless MuJoCo)

    torch.set_num_threads(args.threads)
    jobs = [("HWM-Sim-v0", lambda: bench_sim(64, max(args.steps, 200)))]
    for env_id, checkpoint in (("HWM-Flow-v0", args.checkpoint_flow), ("HWM-Masked-v0", args.checkpoint_masked)):
        for mode in ("rgb", "latent"):
            jobs.append((env_id, lambda c=checkpoint, m=mode: bench_single(c, m, args.steps, args.device)))
        for num_envs in args.num_envs:
            jobs.append((env_id, lambda c=checkpoint, n=num_envs: bench_vector(c, n, args.vector_steps, args.device)))
    rows = []
    out = Path(args.json)
    for env_id, job in tqdm(jobs, desc="env speed", unit="row"):
        row = job()
        row.setdefault("env", env_id)
        rows.append({"env": row.pop("env"), **row})
        load = os.getloadavg() if hasattr(os, "getloadavg") else None
        result = {
            "rows": rows,
            "checkpoints": {"flow": args.checkpoint_flow, "masked": args.checkpoint_masked},
            "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "device": args.device, "platform": platform.platform(), "load_average": load},
        }
        atomic_write_text(out, json.dumps(result, indent=2))  # after every row: a long run keeps what it measured
    print(markdown_table(rows))
    print(f"load average during the run: {load}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
