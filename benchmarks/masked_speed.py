"""Speed of Masked-HWM: `predict` frames/s per MaskGIT step count, and training samples/s.

    python benchmarks/masked_speed.py [--config default] [--variant V] [--threads 2]
                                      [--json benchmarks/results/masked_speed.json]

Random weights (speed does not depend on them). Rows: `predict` (one future latent frame,
MaskGIT from a fully masked grid; the context is encoded once per call and reused by every
step) at batch 1 and 64 for 1, 2, 4 and 8 steps plus the preset's default, and one training
step (masking + corruption, cross-entropy, backward, AdamW) at the preset's batch size.
Reports the load average before and after, since the CPU may be shared with other work;
numbers under load are upper bounds on time. Writes JSON and prints a Markdown table.

OMP_WAIT_POLICY=PASSIVE is set before torch loads: on a CPU shared with other processes,
OpenMP's default spin-waiting made small ops 10-100x slower here.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from timing import timed  # noqa: E402

from models.atomic import atomic_write_text  # noqa: E402


def window(config, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    grid = tuple(config.token_grid)
    return {
        "past_tokens": torch.randint(0, config.vocab_size, (batch, config.num_past, *grid), generator=generator),
        "future_tokens": torch.randint(0, config.vocab_size, (batch, config.num_future, *grid), generator=generator),
        "past_actions": torch.randn(batch, config.num_past, config.action_dim, generator=generator),
        "future_actions": torch.randn(batch, config.num_future, config.action_dim, generator=generator),
    }


def bench_predict(model, batch: int, steps: int, repeats: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    inputs = window(model.config, batch, generator)
    seconds = timed(lambda: model.predict(inputs["past_tokens"], inputs["past_actions"], inputs["future_actions"],
                                          steps=steps, generator=generator), repeats, warmup=1)[0]
    frames = batch * model.config.num_future
    return {"what": "predict", "batch": batch, "steps": steps, "ms_per_call": 1000 * seconds,
            "ms_per_frame": 1000 * seconds / frames, "frames_per_s": frames / seconds}


def bench_training(model, batch: int, repeats: int) -> dict:
    from models.masked import masked_objective

    inputs = window(model.config, batch, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        loss, _ = masked_objective(model, inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds, _ = timed(step, repeats, warmup=1, min_seconds=2.0)
    model.eval()
    return {"what": "train step (mask + corrupt, cross-entropy, backward, AdamW)", "batch": batch,
            "ms_per_step": 1000 * seconds, "samples_per_s": batch / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default", help="masked preset name or .yaml path")
    parser.add_argument("--variant", default=None, help="override the preset's variant")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8], help="MaskGIT step counts")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64], help="predict batch sizes")
    parser.add_argument("--repeats", type=int, default=5, help="minimum timed calls per row")
    parser.add_argument("--train-batch", type=int, default=None, help="training batch (default: the preset's)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/masked_speed.json"))
    args = parser.parse_args()

    from models.masked import MaskedHWM
    from train.commands.masked import MaskedTrainingConfig
    from train.commands.model_info import model_config
    from train.config import load_config

    torch.set_num_threads(args.threads)
    config, _ = model_config("masked", args.config, args.variant)
    train_batch = args.train_batch or load_config(MaskedTrainingConfig, "masked", args.config).train.batch_size
    torch.manual_seed(0)
    model = MaskedHWM(config).eval()
    parameters = sum(p.numel() for p in model.parameters())
    tokens_per_call = (config.num_past + config.num_future) * config.tokens_per_frame

    load_before = os.getloadavg()
    step_counts = sorted(set(args.steps) | {config.num_sampling_steps})
    rows = [bench_predict(model, batch, steps, args.repeats) for batch in args.batches for steps in step_counts]
    rows.append(bench_training(model, train_batch, max(3, args.repeats // 2)))
    load_after = os.getloadavg()
    result = {
        "benchmark": "masked_speed",
        "config": args.config, "variant": config.variant, "parameters": parameters,
        "default_steps": config.num_sampling_steps, "unmask_mode": config.unmask_mode,
        "tokens_per_call": tokens_per_call,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                    "load_average_1_5_15_before": load_before, "load_average_1_5_15_after": load_after},
        "rows": rows,
    }
    atomic_write_text(args.json, json.dumps(result, indent=2))

    print(f"Masked-HWM `{args.config}` ({config.variant}, {parameters / 1e6:.1f} M parameters, "
          f"{tokens_per_call} tokens per window, {config.unmask_mode} unmasking); torch {torch.__version__}, "
          f"{args.threads} threads; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print("| what | batch | MaskGIT steps | ms / call | ms / frame | frames/s |")
    print("|---|---|---|---|---|---|")
    for row in rows[:-1]:
        print(f"| predict | {row['batch']} | {row['steps']} | {row['ms_per_call']:.1f} | "
              f"{row['ms_per_frame']:.2f} | {row['frames_per_s']:.0f} |")
    train = rows[-1]
    print(f"\ntraining: {train['samples_per_s']:.0f} samples/s (batch {train['batch']}, "
          f"{train['ms_per_step']:.0f} ms per step)")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
