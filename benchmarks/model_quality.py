"""Quality of a world model per sampling-step count, by the evaluation protocol (DESIGN 11).

Runs `hwm eval model` once per step count and writes one JSON with every run plus a
Markdown table (PSNR at horizons 1, 4, 8 vs copy-last and the tokenizer ceiling, the h1 gap
to copy-last with its standard error over the windows and the share of windows won,
delta-PSNR at horizon 4, sharpness at horizon 8, and seconds per run).

With `--probe` the long-horizon scores join the table (probe error in z-units of the model,
copy-last, the data mean and the true frames, and the probe-feature Fréchet distance, at
horizons 1 and H), and `--plot` draws them and PSNR against the horizon (needs the `plots`
extra: pip install -e .[plots]):

    python benchmarks/model_quality.py --checkpoint flow-default --data data/sim-eval \
        --steps 1 2 4 8 16 --json benchmarks/results/flow_quality.json
    python benchmarks/model_quality.py --checkpoint flow-default --data data/sim-eval --steps 1 \
        --probe probe-default --horizon 64 --plot flow_long_horizon.png --json flow_long_horizon.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hwm_env.cli import main as hwm  # noqa: E402
from models.atomic import atomic_write_text  # noqa: E402


def evaluate(checkpoint: str, data: str, horizon: int, episodes: int, steps: int, seed: int,
             readout: str | None = None, probe: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        started = time.perf_counter()
        code = hwm(["eval", "model", "--checkpoint", checkpoint, "--data", data, "--horizon", str(horizon),
                    "--episodes", str(episodes), "--steps", str(steps), "--seed", str(seed), "--json", str(out)]
                   + ([] if readout is None else ["--readout", readout])
                   + ([] if probe is None else ["--probe", probe]))
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


def probe_table(runs: list[dict]) -> str:
    """The long-horizon scores at horizons 1 and H (the last) and the probe error's mean over 1..H (how
    models and samplers are chosen: README, Evaluation) with its standard error over the windows."""
    last = len(runs[0]["horizons"])

    def at(run, key, horizon):
        return f"{run[key][horizon - 1]:.3f}"

    def mean_over_horizons(run):  # per-window means over 1..H: their mean ± its standard error
        per_window = [statistics.fmean(row) for row in run["window_probe_error"]["model"]]
        spread = statistics.stdev(per_window) if len(per_window) > 1 else 0.0
        return f"{statistics.fmean(per_window):.3f} ± {spread / len(per_window) ** 0.5:.3f}"

    keys = ("probe_error", "copy_last_probe_error", "mean_probe_error", "recon_probe_error", "true_probe_error")
    lines = [f"| steps | probe err h1 | h{last} | mean h1-{last} ± SE | copy-last h1 | h{last} | mean h1-{last} | "
             f"data mean h1 | h{last} | reconstruction h1 | h{last} | true frames h1 | h{last} | FD h1 | h{last} | "
             f"copy-last FD h{last} |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        cells = [at(run, keys[0], 1), at(run, keys[0], last), mean_over_horizons(run),
                 at(run, keys[1], 1), at(run, keys[1], last), f"{sum(run[keys[1]]) / last:.3f}"]
        cells += [at(run, key, horizon) for key in keys[2:] for horizon in (1, last)]
        cells += [f"{run['probe_fd'][0]:.2f}", f"{run['probe_fd'][last - 1]:.2f}",
                  f"{run['copy_last_probe_fd'][last - 1]:.2f}"]
        lines.append(f"| {run['steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: list[dict], path: Path, title: str = "") -> Path:
    """PNG of probe error, probe-feature FD and PSNR against the horizon: each run (step count)
    against copy-last, the data mean and the true frames (the baselines are the same windows
    in every run: drawn from the first)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise SystemExit("--plot needs matplotlib: pip install -e .[plots] (the 'plots' extra)") from error
    first = runs[0]
    horizons = first["horizons"]
    panels = [("probe error (z-units)", "probe_error",
               [("copy-last", "copy_last_probe_error"), ("data mean", "mean_probe_error"),
                ("reconstruction", "recon_probe_error"), ("true frames", "true_probe_error")]),
              ("probe-feature Fréchet distance", "probe_fd", [("copy-last", "copy_last_probe_fd")]),
              ("PSNR (dB)", "psnr", [("copy-last", "copy_last_psnr"), ("reconstruction", "recon_psnr")])]
    styles = {"copy-last": ("tab:gray", "--"), "data mean": ("tab:red", ":"), "true frames": ("black", "-."),
              "reconstruction": ("tab:brown", ":")}
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), constrained_layout=True)
    for axis, (label, key, baselines) in zip(axes, panels):
        for run in runs:
            axis.plot(horizons, run[key], label=f"model ({run['steps']} steps)", linewidth=2)
        for name, baseline in baselines:
            color, dash = styles[name]
            axis.plot(horizons, first[baseline], label=name, color=color, linestyle=dash)
        axis.set_xlabel("horizon (frames)")
        axis.set_title(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
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
    parser.add_argument("--probe", default=None,
                        help="state probe (probe-default or a folder): add the long-horizon scores")
    parser.add_argument("--plot", type=Path, default=None,
                        help="write a PNG of probe error, FD and PSNR against the horizon (needs --probe)")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.horizon < 8:
        parser.error("--horizon must be >= 8 (the table reports horizon 8)")
    if args.plot is not None and args.probe is None:
        parser.error("--plot draws the probe's scores: pass --probe too")
    runs = [evaluate(args.checkpoint, args.data, args.horizon, args.episodes, steps, args.seed, args.readout,
                     args.probe)
            for steps in args.steps]
    markdown = table(runs)
    if args.probe is not None:
        markdown += "\n\n" + probe_table(runs)
    atomic_write_text(args.json, json.dumps({"checkpoint": args.checkpoint, "data": args.data, "runs": runs}, indent=2))
    atomic_write_text(args.json.with_suffix(".md"), markdown + "\n")
    print(markdown)
    if args.plot is not None:
        print(f"wrote {plot(runs, args.plot, title=f'{args.checkpoint} on {args.data}')}")


if __name__ == "__main__":
    main()
