"""Self-forcing: train a world model on contexts that end in its own predictions.

A model trained only on real context frames (teacher forcing) meets its own predictions as
context as soon as it rolls out more than one frame, and reads their small errors as motion:
`flow-default` predicts a still robot's next frame at 29.4 dB but 22.6 dB four frames on
(benchmarks/planning_goal_bias.py). Replacing the last r context frames of some training
windows with the model's own r-frame rollout (no gradient through it) shows the model that
distribution during training (scheduled sampling, Bengio et al. 2015; the "self forcing" of
autoregressive video diffusion). Windows carry `extra` more past frames than the model's
`num_past`, so the rollout starts from real frames.
"""
from __future__ import annotations

import torch


def check_self_forcing(extra: int, fraction: float) -> None:
    """Clear errors for the two knobs (`data.self_forcing_frames`, `data.self_forcing_fraction`)."""
    if isinstance(extra, bool) or not isinstance(extra, int) or extra < 0:
        raise ValueError(f"data.self_forcing_frames must be an integer >= 0, got {extra!r}")
    if not isinstance(fraction, (int, float)) or not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"data.self_forcing_fraction must be in [0, 1], got {fraction!r}")
    if extra > 0 and float(fraction) == 0.0:
        raise ValueError("data.self_forcing_frames > 0 needs data.self_forcing_fraction > 0 (or set the frames to 0)")


def self_forced_batch(model, batch: dict, num_past: int, fraction: float,
                      generator: torch.Generator | None = None) -> dict:
    """The batch with `num_past` context frames, the last r of them the model's own, in a fraction of rows.

    batch["past_latents"] (B, P + k, ...) and batch["past_actions"] (B, P + k, ...) hold k extra
    earlier frames. In training mode, r is drawn from 1..k once per batch and each row is
    rolled out with probability `fraction`; in eval mode (validation) every row keeps its real
    last P frames, so validation losses stay comparable with teacher-forced runs.
    """
    past, actions = batch["past_latents"], batch["past_actions"]
    extra = past.shape[1] - num_past
    if extra < 0 or actions.shape[1] != past.shape[1]:
        raise ValueError(f"self forcing needs past_latents and past_actions with >= {num_past} frames each, "
                         f"got {tuple(past.shape)} and {tuple(actions.shape)}")
    out = dict(batch)
    out["past_latents"], out["past_actions"] = past[:, extra:], actions[:, extra:]
    if extra == 0 or not model.training:
        return out
    rows = torch.rand(past.shape[0], generator=generator) < float(fraction)
    if not rows.any():
        return out
    frames = int(torch.randint(1, extra + 1, (1,), generator=generator))
    start = extra - frames  # the rollout's real context: frames start .. start + P - 1
    context = past[rows, start : start + num_past]
    context_actions = actions[rows, start : start + num_past]
    future_actions = actions[rows, start + num_past : start + num_past + frames]  # into the frames it predicts
    model.eval()  # sample as at planning time (no classifier-free-guidance dropout)
    try:
        with torch.no_grad():
            predicted = model.rollout(context, context_actions, future_actions)  # (n, r, ...)
    finally:
        model.train()  # only reached in training mode (returned above otherwise)
    rolled = torch.cat([context, predicted.to(context.device, context.dtype)], dim=1)[:, -num_past:]
    latents = out["past_latents"].clone()
    latents[rows] = rolled
    out["past_latents"] = latents
    return out
