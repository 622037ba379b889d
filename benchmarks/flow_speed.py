"""Speed of Flow-HWM: `predict` frames/s per sampling step count, and training samples/s.

    python benchmarks/flow_speed.py [--config default] [--variant V] [--threads 2]
                                    [--json benchmarks/results/flow_speed.json]

Random weights (speed does not depend on them). Rows: `predict` (one future latent,
Euler, no guidance unless --cfg-scale) at batch 1 and 64 for 1, 4 and 8 steps plus the
preset's default step count, and one training step (flow-matching loss, backward,
AdamW) at the preset's batch size. Reports the load average before and after, since
the CPU may be shared with other work; numbers under load are upper bounds on time.
Writes JSON and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch
from timing import timed

from models.atomic import atomic_write_text


def window(config, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    shape = (config.latent_channels, config.latent_height, config.latent_width)
    return {
        "past_latents": torch.randn(batch, config.num_past, *shape, generator=generator),
        "future_latents": torch.randn(batch, config.num_future, *shape, generator=generator),
        "past_actions": torch.randn(batch, config.num_past_action_tokens, config.action_dim, generator=generator),
        "future_actions": torch.randn(batch, config.num_future_action_tokens, config.action_dim, generator=generator),
    }


def bench_predict(model, batch: int, steps: int, cfg_scale: float, repeats: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    inputs = window(model.config, batch, generator)
    seconds, cpu_seconds = timed(lambda: model.predict(
        inputs["past_latents"], inputs["past_actions"], inputs["future_actions"],
        steps=steps, cfg_scale=cfg_scale, generator=generator), repeats)
    frames = batch * model.config.num_future
    return {"what": "predict", "batch": batch, "steps": steps, "cfg_scale": cfg_scale,
            "ms_per_call": 1000 * seconds, "ms_per_frame": 1000 * seconds / frames, "frames_per_s": frames / seconds,
            "cpu_ms_per_frame": 1000 * cpu_seconds / frames}


def bench_training(model, batch: int, repeats: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    inputs = window(model.config, batch, generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        loss, _ = model(inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds, cpu_seconds = timed(step, repeats, min_seconds=2.0)
    model.eval()
    return {"what": "train step (loss + backward + AdamW)", "batch": batch, "ms_per_step": 1000 * seconds,
            "samples_per_s": batch / seconds, "cpu_ms_per_sample": 1000 * cpu_seconds / batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default", help="flow preset name or .yaml path")
    parser.add_argument("--variant", default=None, help="override the preset's variant")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 4, 8], help="sampling step counts")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64], help="predict batch sizes")
    parser.add_argument("--cfg-scale", type=float, default=1.0, help="guidance scale (1 = one pass per step)")
    parser.add_argument("--repeats", type=int, default=5, help="minimum timed calls per row")
    parser.add_argument("--train-batch", type=int, default=None, help="training batch (default: the preset's)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/flow_speed.json"))
    args = parser.parse_args()

    from models.flow import FlowHWM
    from train.commands.flow import load_flow_config
    from train.commands.model_info import model_config

    torch.set_num_threads(args.threads)
    config, _ = model_config("flow", args.config, args.variant)
    train_batch = args.train_batch or load_flow_config(args.config).train.batch_size
    torch.manual_seed(0)
    model = FlowHWM(config).eval()
    parameters = sum(p.numel() for p in model.parameters())

    load_before = os.getloadavg()
    step_counts = sorted(set(args.steps) | {config.num_sampling_steps})
    rows = [bench_predict(model, batch, steps, args.cfg_scale, args.repeats)
            for batch in args.batches for steps in step_counts]
    rows.append(bench_training(model, train_batch, max(3, args.repeats // 2)))
    load_after = os.getloadavg()
    result = {
        "benchmark": "flow_speed",
        "config": args.config, "variant": config.variant, "parameters": parameters,
        "default_steps": config.num_sampling_steps, "sampler": config.sampler,
        "tokens_per_call": sum(config.stream_lengths()),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "threads": args.threads, "load_average_1_5_15_before": load_before,
                    "load_average_1_5_15_after": load_after},
        "rows": rows,
    }
    atomic_write_text(args.json, json.dumps(result, indent=2))

    print(f"Flow-HWM `{args.config}` ({config.variant}, {parameters / 1e6:.1f} M parameters, "
          f"{result['tokens_per_call']} tokens per call, {config.sampler}); torch {torch.__version__}, "
          f"{args.threads} threads; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print("| what | batch | steps | ms / call | ms / frame | frames/s | CPU ms / frame |")
    print("|---|---|---|---|---|---|---|")
    for row in rows[:-1]:
        print(f"| predict | {row['batch']} | {row['steps']} | {row['ms_per_call']:.1f} | "
              f"{row['ms_per_frame']:.2f} | {row['frames_per_s']:.0f} | {row['cpu_ms_per_frame']:.2f} |")
    train = rows[-1]
    print(f"\ntraining: {train['samples_per_s']:.0f} samples/s (batch {train['batch']}, "
          f"{train['ms_per_step']:.0f} ms per step; {train['cpu_ms_per_sample']:.1f} CPU ms per sample)")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
