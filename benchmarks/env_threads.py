"""Single-env step time on an idle machine and with the other core busy, per thread setting.

    python benchmarks/env_threads.py [--steps 200] [--json env_threads.json]

OpenMP's default wait policy spins idle threads; with another process on one of the two
cores, a batch-1 step then waits for a descheduled thread. Each row runs in a fresh
process (the policy is read when torch loads) and steps `HWM-Flow-v0` / `HWM-Masked-v0`
(rgb, shipped checkpoints) with seeded random actions; "busy" runs one spinning Python
process beside it for the whole row. Rows:

| row | what the process does |
|---|---|
| this release | `import hwm_env` first (it sets `OMP_WAIT_POLICY=PASSIVE`); batch-1 calls on one thread. The `hwm` CLI starts the same way |
| this release, torch imported first | the policy stays OpenMP's default (spinning): only the one-thread calls protect |
| previous release, library | spinning default policy, batch-1 calls on both threads |
| previous release, CLI | `OMP_WAIT_POLICY=PASSIVE`, batch-1 calls on both threads |

Median and 90th-percentile ms per `step`; compare rows of one run only.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from models import tables
from models.atomic import atomic_write_text

ROWS = {
    "this release (`import hwm_env`, or the `hwm` CLI)": {"first": "hwm_env", "policy": None, "one_thread": True},
    "this release, torch imported first": {"first": "torch", "policy": None, "one_thread": True},
    "previous release, library (spinning, 2 threads)": {"first": "torch", "policy": None, "one_thread": False},
    "previous release, CLI (PASSIVE, 2 threads)": {"first": "torch", "policy": "PASSIVE", "one_thread": False},
}
ENV_IDS = ("HWM-Flow-v0", "HWM-Masked-v0")

STEP_SCRIPT = """
import json, statistics, sys, time
first, env_id, one_thread, steps = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
import importlib; importlib.import_module(first)
import contextlib, gymnasium as gym, numpy as np, torch, hwm_env, hwm_env.world_model_env as wm
torch.set_num_threads(2)
if not one_thread:  # the previous release ran batch-1 calls on every thread
    wm.call_threads = lambda *args, **kwargs: contextlib.nullcontext()
env = gym.make(env_id)
env.reset(seed=0)
actions = np.random.default_rng(0).uniform(-1, 1, (steps + 20, 25)).astype(np.float32)
times = []
for i, action in enumerate(actions):
    start = time.perf_counter()
    env.step(action)
    if i >= 20:
        times.append(1000 * (time.perf_counter() - start))
times.sort()
print(json.dumps({"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * len(times))]}))
"""


def measure(row: dict, env_id: str, steps: int, busy: bool) -> dict:
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if row["policy"]:
        environment["OMP_WAIT_POLICY"] = row["policy"]
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        result = subprocess.run(
            [sys.executable, "-c", STEP_SCRIPT, row["first"], env_id, "1" if row["one_thread"] else "0", str(steps)],
            capture_output=True, text=True, env=environment, check=True,
        )
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per row (after 20 untimed)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this JSON file (and a .md table)")
    args = parser.parse_args()
    results = []
    for env_id in ENV_IDS:
        for label, row in ROWS.items():
            idle = measure(row, env_id, args.steps, busy=False)
            busy = measure(row, env_id, args.steps, busy=True)
            results.append({"env": env_id, "setting": label, "idle": idle, "busy": busy})
            print(f"{env_id} | {label}: idle {idle['median_ms']:.1f} ms, busy {busy['median_ms']:.1f} ms", flush=True)
    table = tables.markdown_table(
        ["env", "setting", "idle: median ms", "idle: p90 ms", "one core busy: median ms", "one core busy: p90 ms"],
        [[r["env"], r["setting"], f"{r['idle']['median_ms']:.1f}", f"{r['idle']['p90_ms']:.1f}",
          f"{r['busy']['median_ms']:.1f}", f"{r['busy']['p90_ms']:.1f}"] for r in results],
        align="llrrrr",
    )
    print(table)
    if args.json:
        atomic_write_text(args.json, json.dumps({"machine": platform.processor() or platform.machine(),
                                                 "cpus": os.cpu_count(), "steps": args.steps, "rows": results}, indent=2))
        atomic_write_text(args.json.with_suffix(".md"), table + "\n")


if __name__ == "__main__":
    main()
