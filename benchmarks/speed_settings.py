"""Speed settings side by side: eager fp32 (as shipped before), bf16, compiled, bf16 + compiled.

    python benchmarks/speed_settings.py [--rows vector single train plan] [--threads 2]
        [--train-data DIR] [--peer-path FILE] [--out benchmarks/results/speed_settings]

Every row measures the four settings in the same process, round-robin after each one's
warm-up (which is where compilation happens; its seconds are reported), so a change of
load on a shared machine hits all four alike. Rows, each for Flow-HWM and Masked-HWM
(shipped defaults):

- `vector`: `HWMVectorEnv` with 64 envs in `latent` mode, env steps/s (one batched call per step);
- `single`: `HWMEnv` in `rgb` mode (predict + decode), ms per step;
- `train`: `hwm train flow|masked --config default` for `--train-steps` steps, samples/s
  (median of the logged intervals after the first; the data: `--train-data`, or a small
  simulator set made once under /tmp);
- `plan`: one replan of the planning benchmark's default CEM (planners/benchmark/protocol.py
  PLANNER_DEFAULTS: horizon 1, 16 samples, 2 elites, 2 iterations; the plan held for the
  protocol's 4 frames = 4 model steps; latent goal cost), ms; plus the same replan with 4x
  the candidates (64).

`--peer-path FILE`: an optional peer row. FILE is the user's own adapter around the original
paper code (not shipped here): it defines `make_forward(batch_size) -> callable` that runs
one forward of the original VideoDiTModel at the size of the shipped-default comparison;
the row times it at batch 1 and 16. Skipped when absent. Writes OUT.json and OUT.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

SETTINGS = {  # name -> (precision, compile)
    "eager fp32": ("fp32", False),
    "eager bf16": ("bf16", False),
    "compiled fp32": ("fp32", True),
    "compiled bf16": ("bf16", True),
}
FAMILIES = {"Flow": "flow-default", "Masked": "masked-default"}


def round_robin(calls: dict, rounds: int, repeats: int) -> dict:
    """{name: (best wall s, best CPU s) per call} over `rounds` rounds of `repeats` calls of each."""
    best: dict = {}
    for _ in range(rounds):
        for name, call in calls.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(repeats):
                call()
            wall, cpu = (time.perf_counter() - start) / repeats, (time.process_time() - cpu_start) / repeats
            previous = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(previous[0], wall), min(previous[1], cpu))
    return best


def warm_up(name: str, call, runner) -> float:
    """Run the first call (compilation happens here); its seconds."""
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    report = runner.compile_report if runner is not None else {}
    if report.get("fell_back"):
        print(f"  {name}: fell back to eager: {report['fell_back']}", flush=True)
    return seconds


def bench_envs(checkpoint: str, vector: bool, num_envs: int, rounds: int, repeats: int, settings: dict) -> list[dict]:
    from hwm_env.vector_env import HWMVectorEnv
    from hwm_env.world_model_env import HWMEnv

    rng = np.random.default_rng(0)
    calls, first, runners = {}, {}, {}
    for name, (precision, compile) in settings.items():
        if vector:
            env = HWMVectorEnv(num_envs=num_envs, checkpoint=checkpoint, obs_mode="latent", device="cpu",
                               precision=precision, compile=compile)
        else:
            env = HWMEnv(checkpoint=checkpoint, obs_mode="rgb", device="cpu", precision=precision, compile=compile)
        env.reset(seed=0)
        shape = env.action_space.shape
        calls[name] = lambda env=env, shape=shape: env.step(rng.uniform(-1, 1, shape).astype(np.float32))
        runners[name] = env.runner
        first[name] = warm_up(name, calls[name], env.runner)
        calls[name]()  # a second call: a recompilation for a changed guard happens here, not in the timing
    timings = round_robin(calls, rounds, repeats)
    rows = []
    for name, (wall, cpu) in timings.items():
        report = runners[name].compile_report
        rows.append({"setting": name, "wall_s": wall, "cpu_s": cpu, "first_call_s": first[name],
                     "compile_s": report["compile_seconds"], "fell_back": report["fell_back"],
                     "precision": runners[name].precision})
    return rows


def training_data(directory: str | None) -> Path:
    """`directory`, or a small simulator data set encoded with both shipped tokenizers (made once)."""
    from hwm_env.cli import main as hwm

    if directory is not None:
        return Path(directory)
    root = Path(tempfile.gettempdir()) / "hwm-speed-settings-data"
    if not (root / "train" / "tokens.bin").is_file():
        hwm(["data", "sim", "--episodes", "24", "--steps", "100", "--out", str(root), "--seed", "0", "--overwrite"])
        hwm(["data", "encode", "--tokenizer", "tokenizer-continuous", "--data", str(root)])
        hwm(["data", "encode", "--tokenizer", "tokenizer-fsq", "--data", str(root)])
    return root


def bench_training(family: str, data: Path, steps: int, rounds: int, settings: dict) -> list[dict]:
    """samples/s of `hwm train FAMILY --config default` per setting (best round; median interval after the first)."""
    from hwm_env.cli import main as hwm

    log_every = max(1, steps // 4)
    results: dict[str, list[float]] = {name: [] for name in settings}
    losses: dict[str, float] = {}
    for round_index in range(rounds):
        for name, (precision, compile) in settings.items():
            with tempfile.TemporaryDirectory() as out:
                hwm(["train", family, "--data", str(data), "--config", "default", "--out", out,
                     f"train.steps={steps}", f"train.log_every={log_every}", "train.val_every=0",
                     "train.save_every=100000", f"train.precision={precision}", f"train.compile={str(compile).lower()}"])
                records = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
            intervals = [r["samples_per_s"] for r in records if "samples_per_s" in r][1:]
            results[name].append(statistics.median(intervals))
            losses[name] = [r["loss"] for r in records if "loss" in r][-1]
    return [{"setting": name, "samples_per_s": max(values), "all_rounds": values, "last_loss": losses[name]}
            for name, values in results.items()]


class HeldActions:
    """Planner dynamics holding each planned action for `repeat` model steps (the protocol's action repeat)."""

    def __init__(self, dynamics, repeat: int):
        self.dynamics, self.repeat = dynamics, repeat
        self.action_dim = dynamics.action_dim

    def rollout(self, state, actions):
        return self.dynamics.rollout(state, actions.repeat_interleave(self.repeat, dim=1))[:, self.repeat - 1 :: self.repeat]


def bench_planning(checkpoint: str, rounds: int, repeats: int, settings_by_name: dict) -> list[dict]:
    import torch

    from planners.benchmark.protocol import PLANNER_DEFAULTS, Protocol
    from planners.cem import CEM
    from planners.costs import LatentGoalCost
    from planners.dynamics import load_world_model_dynamics

    settings = {key: value for key, value in PLANNER_DEFAULTS["cem"].items() if key != "filter_scale"}
    repeat = Protocol().action_repeat
    rows = []
    for samples in (settings["num_samples"], 4 * settings["num_samples"]):
        calls, first, runners = {}, {}, {}
        for name, (precision, compile) in settings_by_name.items():
            dynamics, _ = load_world_model_dynamics(checkpoint, precision=precision, compile=compile, seed=0)
            generator = torch.Generator().manual_seed(0)
            shape = (dynamics.num_past, *_latent_shape(dynamics.model))
            if dynamics.model.family == "flow":
                past = torch.rand(shape, generator=generator) * 2 - 1
                goal = torch.rand(shape[1:], generator=generator) * 2 - 1
            else:
                vocab = int(dynamics.model.config.vocab_size)
                past = torch.randint(0, vocab, shape, generator=generator)
                goal = torch.randint(0, vocab, shape[1:], generator=generator)
            state = {"past_latents": past, "past_actions": torch.zeros(dynamics.num_past, dynamics.action_dim)}
            planner = CEM(**{**settings, "num_samples": samples}, seed=0)
            cost = LatentGoalCost(goal)
            held = HeldActions(dynamics, repeat)
            calls[name] = lambda planner=planner, held=held, cost=cost, state=state: planner.plan(held, cost, state)
            first[name] = warm_up(name, calls[name], None)
            calls[name]()
            runners[name] = dynamics
        for name, (wall, cpu) in round_robin(calls, rounds, repeats).items():
            from models.compiled import compile_report

            report = compile_report(runners[name].compiled_methods)
            rows.append({"setting": name, "num_samples": samples, "wall_s": wall, "cpu_s": cpu,
                         "first_call_s": first[name], "compile_s": report["compile_seconds"]})
    return rows


def _latent_shape(model) -> tuple[int, ...]:
    config = model.config
    if model.family == "flow":
        return (config.latent_channels, config.latent_height, config.latent_width)
    return tuple(config.token_grid)


def bench_peer(path: str | None, rounds: int, repeats: int) -> list[dict]:
    """The user's adapter around the original VideoDiTModel (see the module docstring); [] when absent."""
    if not path or not Path(path).is_file():
        return []
    import importlib.util

    spec = importlib.util.spec_from_file_location("hwm_speed_peer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = []
    for batch in (1, 16):
        forward = module.make_forward(batch)
        forward()
        (wall, cpu), = round_robin({"peer": forward}, rounds, repeats).values()
        rows.append({"setting": "peer VideoDiTModel (eager fp32)", "batch": batch, "wall_s": wall, "cpu_s": cpu})
    return rows


def _ratio(rows: list[dict], name: str, key: str, higher_is_better: bool) -> str:
    base = next(row[key] for row in rows if row["setting"] == "eager fp32")
    value = next(row[key] for row in rows if row["setting"] == name)
    return f"{(value / base if higher_is_better else base / value):.2f}x"


def markdown(result: dict, command: str) -> str:
    from models import tables

    lines = [f"# Speed settings (`{result['machine']['torch_threads']}` threads, {result['machine']['cpu']})", "",
             f"Command: `{command}`", "",
             "Each row: the four settings in one process, timed round-robin after their warm-up; x = speed "
             "relative to eager fp32 in the same row (wall time; CPU time in the JSON). `compile s`: the first "
             f"compilation's seconds. Load average during the run: {result['machine']['load_average']}.", ""]
    cells = []
    for row in result["rows"]:
        for entry in row["settings"]:
            if row["kind"] == "train":
                value, ratio = f"{entry['samples_per_s']:.1f} samples/s", _ratio(row["settings"], entry["setting"],
                                                                                  "samples_per_s", True)
                compile_s = ""
            elif row["kind"] == "vector":
                value = f"{row['num_envs'] / entry['wall_s']:.0f} env steps/s"
                ratio = _ratio(row["settings"], entry["setting"], "wall_s", False)
                compile_s = "" if entry.get("compile_s") is None else f"{entry['compile_s']:.0f}"
            else:
                value = f"{1000 * entry['wall_s']:.1f} ms"
                ratio = _ratio(row["settings"], entry["setting"], "wall_s", False)
                compile_s = "" if entry.get("compile_s") is None else f"{entry['compile_s']:.0f}"
            cells.append([row["what"], entry["setting"], value, ratio, compile_s])
    lines.append(tables.markdown_table(["what", "setting", "speed", "x", "compile s"], cells, align="llrrr"))
    if result.get("peer"):
        lines += ["", "Peer (the user's adapter around the original code, `--peer-path`):", ""]
        lines.append(tables.markdown_table(["batch", "ms per forward"], [[r["batch"], f"{1000 * r['wall_s']:.1f}"]
                                                                         for r in result["peer"]], align="rr"))
    else:
        lines += ["", "Peer row skipped: no `--peer-path` adapter given."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="*", default=["vector", "single", "train", "plan"],
                        choices=["vector", "single", "train", "plan"])
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds per row (default 3)")
    parser.add_argument("--train-steps", type=int, default=40, help="steps per training run (default 40)")
    parser.add_argument("--train-rounds", type=int, default=1)
    parser.add_argument("--train-data", default=None, help="hwm-v1 root with latents and tokens (default: made under /tmp)")
    parser.add_argument("--peer-path", default=None, help="the user's adapter file around the original VideoDiTModel")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS),
                        help="which settings to measure (default all four; eager fp32 is always kept as the baseline)")
    parser.add_argument("--eager-only-rows", nargs="*", default=[], choices=["vector", "single", "train", "plan"],
                        help="rows measured without the compiled settings (each compilation costs minutes on 2 cores)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/speed_settings")
    args = parser.parse_args(argv)

    import torch

    import hwm_env  # noqa: F401  (headless MuJoCo, OMP wait policy)
    from models.atomic import atomic_write_text
    from models.precision import bf16_supported

    torch.set_num_threads(args.threads)
    for name in list(SETTINGS):
        if name not in args.settings and name != "eager fp32":
            del SETTINGS[name]
    torch._dynamo.config.cache_size_limit = 64  # four settings' models share the methods' code
    warnings.filterwarnings("ignore", message="Mismatch dtype between input and weight")
    command = "python benchmarks/speed_settings.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    result = {"rows": [], "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                      "torch": torch.__version__, "platform": platform.platform(),
                                      "cpu": f"bf16 native: {bf16_supported('cpu')}", "load_average": None},
              "command": command}
    out = Path(args.out)

    def settings_for(row: str) -> dict:
        if row in args.eager_only_rows:
            return {name: value for name, value in SETTINGS.items() if not value[1]}
        return SETTINGS

    def save(row: dict) -> None:
        result["rows"].append(row)
        result["machine"]["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
        atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2))
        atomic_write_text(out.with_suffix(".md"), markdown(result, command))  # a cut-short run keeps its rows
        print(f"{row['what']}: " + ", ".join(
            f"{entry['setting']} {entry.get('samples_per_s') or 1000 * entry['wall_s']:.1f}" for entry in row["settings"]),
            flush=True)

    for kind in args.rows:  # in the order given
        if kind == "train":
            data = training_data(args.train_data)
        for family, checkpoint in FAMILIES.items():
            if kind == "vector":
                save({"kind": "vector", "what": f"{family} vector env, {args.num_envs} envs, latent",
                      "num_envs": args.num_envs,
                      "settings": bench_envs(checkpoint, True, args.num_envs, args.rounds, 3, settings_for("vector"))})
            elif kind == "single":
                save({"kind": "single", "what": f"{family} single env, rgb step",
                      "settings": bench_envs(checkpoint, False, 1, args.rounds, 20, settings_for("single"))})
            elif kind == "plan":
                rows = bench_planning(checkpoint, args.rounds, 1, settings_for("plan"))
                for samples in sorted({row["num_samples"] for row in rows}):
                    save({"kind": "plan", "what": f"{family} CEM replan, {samples} samples",
                          "settings": [row for row in rows if row["num_samples"] == samples]})
            else:
                save({"kind": "train", "what": f"{family} training, default config",
                      "settings": bench_training(family.lower(), data, args.train_steps, args.train_rounds,
                                                 settings_for("train"))})
    result["peer"] = bench_peer(args.peer_path, args.rounds, 5)
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2))
    text = markdown(result, command)
    atomic_write_text(out.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
