"""What the shipped long-rollout sampler costs: env speed at 1 sampling step vs the checkpoint's default.

    python benchmarks/sampler_speed.py [--rounds 3] [--out benchmarks/results/sampler_speed]

The shipped checkpoints sample with more than one step because it keeps rollouts nearer the
data for longer (README, Evaluation); this measures the price the issue's speed bar asks for:
per family, one `HWMEnv` `rgb` step (predict + decode, ms) and `HWMVectorEnv` with 64 envs in
`latent` mode (env steps/s), each at 1 step and at the checkpoint's default, eager with
`precision="auto"` (the env default), round-robin in one process (speed_settings.round_robin),
so a change of load on a shared machine hits both alike. Writes OUT.json and OUT.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np

from speed_settings import FAMILIES, round_robin


def bench(checkpoint: str, vector: bool, num_envs: int, rounds: int, repeats: int) -> dict:
    """{steps label: (best wall s, best CPU s)} per env step at 1 step and at the checkpoint's default."""
    from hwm_env.vector_env import HWMVectorEnv
    from hwm_env.world_model_env import HWMEnv

    rng = np.random.default_rng(0)
    calls, labels = {}, {}
    for steps in (1, None):
        if vector:
            env = HWMVectorEnv(num_envs=num_envs, checkpoint=checkpoint, obs_mode="latent", device="cpu", steps=steps)
        else:
            env = HWMEnv(checkpoint=checkpoint, obs_mode="rgb", device="cpu", steps=steps)
        env.reset(seed=0)
        shape = env.action_space.shape
        default = env.runner.model.config.num_sampling_steps
        name = "1 step" if steps == 1 else f"default ({default} steps)"
        calls[name] = lambda env=env, shape=shape: env.step(rng.uniform(-1, 1, shape).astype(np.float32))
        calls[name]()  # warm-up
        labels[name] = env.runner.precision
    timings = round_robin(calls, rounds, repeats)
    return {name: {"wall_s": wall, "cpu_s": cpu, "precision": labels[name]} for name, (wall, cpu) in timings.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/sampler_speed")
    args = parser.parse_args(argv)
    import torch

    from models.atomic import atomic_write_text

    load_before = os.getloadavg()
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                          "threads": torch.get_num_threads(), "load_before": load_before}, "rows": []}
    lines = [f"| family | steps | single env `rgb` step (ms) | vector env, {args.num_envs} envs, `latent` (env steps/s) |",
             "|---|---|---:|---:|"]
    for family, checkpoint in FAMILIES.items():
        single = bench(checkpoint, False, 1, args.rounds, 20)
        vector = bench(checkpoint, True, args.num_envs, args.rounds, 3)
        for name in single:
            rate = args.num_envs / vector[name]["wall_s"]
            result["rows"].append({"family": family, "steps": name, "single_ms": 1000 * single[name]["wall_s"],
                                   "vector_env_steps_per_s": rate, "single": single[name], "vector": vector[name]})
            lines.append(f"| {family}-HWM | {name} | {1000 * single[name]['wall_s']:.1f} | {rate:.0f} |")
    result["machine"]["load_after"] = os.getloadavg()
    command = "python benchmarks/sampler_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = "\n".join(lines)
    intro = (f"`{command.strip()}`: eager, precision auto, {result['machine']['threads']} threads, load "
             f"{load_before[0]:.1f} before / {result['machine']['load_after'][0]:.1f} after (best of {args.rounds} "
             "round-robin rounds).")
    print(intro + "\n\n" + table)
    atomic_write_text(f"{args.out}.json", json.dumps(result, indent=2))
    atomic_write_text(f"{args.out}.md", intro + "\n\n" + table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
