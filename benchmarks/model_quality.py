"""Quality of a world model per sampling-step count, by the evaluation protocol (DESIGN 11).

Runs `hwm eval model` once per step count and writes one JSON with every run plus a
Markdown table (PSNR at horizons 1, 4, 8 vs copy-last and the tokenizer ceiling, the h1 gap
to copy-last with its standard error over the windows and the share of windows won,
delta-PSNR at horizon 4, sharpness at horizon 8, and seconds per run).

    python benchmarks/model_quality.py --checkpoint flow-default --data data/sim-eval \
        --steps 1 2 4 8 16 --json benchmarks/results/flow_quality.json
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hwm_env.cli import main as hwm  # noqa: E402
from models.atomic import atomic_write_text  # noqa: E402


def evaluate(checkpoint: str, data: str, horizon: int, episodes: int, steps: int, seed: int,
             readout: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        started = time.perf_counter()
        code = hwm(["eval", "model", "--checkpoint", checkpoint, "--data", data, "--horizon", str(horizon),
                    "--episodes", str(episodes), "--steps", str(steps), "--seed", str(seed), "--json", str(out)]
                   + ([] if readout is None else ["--readout", readout]))
        if code != 0:
            raise SystemExit(f"hwm eval model failed for steps={steps}")
        result = json.loads(out.read_text())
        result["steps"] = steps
        result["wall_seconds"] = time.perf_counter() - started
        return result


def table(runs: list[dict]) -> str:
    def at(run, key, horizon):
        values = run.get(key)
        return "-" if not values or values[horizon - 1] is None else f"{values[horizon - 1]:.2f}"

    def gap(run, horizon):  # mean gap to copy-last ± its standard error over the windows
        if run.get("gap_stderr") is None or run["gap_stderr"][horizon - 1] is None:
            return "-"
        return (f"{run['psnr'][horizon - 1] - run['copy_last_psnr'][horizon - 1]:+.2f} "
                f"± {run['gap_stderr'][horizon - 1]:.2f}")

    lines = ["| steps | PSNR h1 | h4 | h8 | copy-last h1 | h4 | h8 | gap h1 ± SE | wins h1 | recon h1 | "
             "delta-PSNR h4 | sharpness h8 | s/run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        label = run["steps"] if run.get("readout") is None else f"{run['steps']} ({run['readout']} readout)"
        lines.append(
            f"| {label} | {at(run, 'psnr', 1)} | {at(run, 'psnr', 4)} | {at(run, 'psnr', 8)} | "
            f"{at(run, 'copy_last_psnr', 1)} | {at(run, 'copy_last_psnr', 4)} | {at(run, 'copy_last_psnr', 8)} | "
            f"{gap(run, 1)} | {at(run, 'win_fraction', 1)} | {at(run, 'recon_psnr', 1)} | "
            f"{at(run, 'delta_psnr', 4)} | {at(run, 'sharpness', 8)} | "
            f"{run['wall_seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="data root (val/ is used) or split with raw frames")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--readout", choices=("tokens", "mean"), default=None,
                        help="Masked-HWM: decode sampled tokens or expected FSQ codes "
                             "(default: the checkpoint's model.readout)")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    if args.horizon < 8:
        parser.error("--horizon must be >= 8 (the table reports horizon 8)")
    runs = [evaluate(args.checkpoint, args.data, args.horizon, args.episodes, steps, args.seed, args.readout)
            for steps in args.steps]
    markdown = table(runs)
    atomic_write_text(args.json, json.dumps({"checkpoint": args.checkpoint, "data": args.data, "runs": runs}, indent=2))
    atomic_write_text(args.json.with_suffix(".md"), markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
