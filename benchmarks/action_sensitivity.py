"""Which inputs does a world model's next frame depend on: its actions, or the motion in its past frames?

    python benchmarks/action_sensitivity.py --checkpoint masked-default flow-default --data data/sim-eval \
        --json benchmarks/results/action_sensitivity.json

A diagnostic for delta-PSNR. On the evaluation protocol's windows (one per episode, seeded, as
`hwm eval model` picks them), the 1-frame prediction is scored (PSNR against the true next
frame) with the true inputs and with one input swapped at a time: the future action, the past
actions, all actions (those of the previous window, as delta-PSNR does), and a still history
(every past latent replaced by the last one, so the frames show no motion). A model that
ignores an input scores the same with it swapped; copy-last-frame is the reference.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from models.atomic import atomic_write_text  # noqa: E402

CONDITIONS = ("true", "future_swapped", "past_swapped", "all_swapped", "still_history")


def sensitivity(checkpoint: str, data: str, episodes: int, seed: int, steps: int | None) -> dict:
    from planners.dynamics import load_world_model_dynamics
    from train import metrics
    from train.commands.evaluate import evaluation_split
    from models.data.open import open_split
    from models.data.windows import WindowDataset
    from train.evaluation import select_windows

    dynamics, tokenizer = load_world_model_dynamics(checkpoint)  # the model and the tokenizer it carries
    model = dynamics.model
    windows = WindowDataset(open_split(evaluation_split(data)), num_past=model.num_past, num_future=1, source="frames")
    items = [windows[i] for i in select_windows(windows, episodes, seed)]
    if len(items) < 2:
        raise ValueError(f"{data}: needs windows from at least 2 episodes to swap actions between them")
    past_frames = torch.stack([item["past_frames"] for item in items])
    truth = torch.stack([item["future_frames"] for item in items])[:, 0]
    past_actions = torch.stack([item["past_actions"] for item in items])
    future_actions = torch.stack([item["future_actions"] for item in items])
    context = tokenizer.encode(past_frames)
    still = context[:, -1:].expand_as(context).contiguous()
    other = lambda actions: actions.roll(1, dims=0)  # noqa: E731  window i gets window i-1's
    inputs = {
        "true": (context, past_actions, future_actions),
        "future_swapped": (context, past_actions, other(future_actions)),
        "past_swapped": (context, other(past_actions), future_actions),
        "all_swapped": (context, other(past_actions), other(future_actions)),
        "still_history": (still, past_actions, future_actions),
    }
    readout = getattr(model.config, "readout", None)  # Masked-HWM: the frames its checkpoint shows
    options = {} if readout is None else {"readout": readout}
    decode = tokenizer.decode_digits if readout == "mean" else tokenizer.decode
    psnr = {}
    for name in CONDITIONS:
        latents, past, future = inputs[name]
        predicted = model.rollout(latents, past, future, steps=steps, generator=torch.Generator().manual_seed(seed),
                                  **options)
        psnr[name] = float(metrics.psnr(decode(predicted)[:, 0], truth).mean())
    psnr["copy_last"] = float(metrics.psnr(past_frames[:, -1], truth).mean())
    return {"checkpoint": checkpoint, "episodes": len(items), "steps": steps, "readout": readout, "psnr": psnr,
            "drop": {name: psnr["true"] - psnr[name] for name in CONDITIONS[1:]}}


def table(rows: list[dict]) -> str:
    lines = ["| checkpoint | true inputs | future action swapped | past actions swapped | all actions swapped | "
             "still history | copy-last |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        cells = [f"{row['psnr']['true']:.2f}"]
        cells += [f"{row['psnr'][name]:.2f} ({-row['drop'][name]:+.2f})" for name in CONDITIONS[1:]]
        lines.append(f"| {row['checkpoint']} | " + " | ".join(cells) + f" | {row['psnr']['copy_last']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", nargs="+", default=["flow-default", "masked-default"])
    parser.add_argument("--data", default="data/sim-eval", help="data root (val/ is used) or a split with raw frames")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: each checkpoint's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/action_sensitivity.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [sensitivity(checkpoint, args.data, args.episodes, args.seed, args.steps) for checkpoint in args.checkpoint]
    markdown = (f"1-frame PSNR (dB) on {rows[0]['episodes']} windows of {args.data} (seed {args.seed}); in brackets, "
                "the change from the true inputs.\n\n" + table(rows))
    atomic_write_text(args.json, json.dumps({"data": args.data, "seed": args.seed, "rows": rows}, indent=2))
    atomic_write_text(args.json.with_suffix(".md"), markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
