"""A world model as planner dynamics, and the rolling context that feeds it during MPC.

`WorldModelDynamics` rolls N candidate action sequences out of one context with the
world model's own `rollout` (the common API of Flow-HWM and Masked-HWM), in latent space:
no decoding in the planning loop. N is split into chunks to bound memory.
`WorldModelContext` is the MPC `state_fn` for it: it keeps the last P encoded frames and
the actions that led into them.
"""
from __future__ import annotations

import os
from collections import deque
from typing import Any

import numpy as np
import torch

from models.precision import autocast, resolve_precision


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        return value
    raise ValueError(f"{name} must be a torch tensor or numpy array, got {type(value).__name__}")


def model_device(model) -> torch.device:
    parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return parameter.device if parameter is not None else torch.device("cpu")


class WorldModelDynamics:
    """Planner dynamics backed by a world model: state {"past_latents", "past_actions"} -> future latents.

    state: `past_latents` (P, C, h, w) float or (P, h, w) tokens, `past_actions` (P, A) in
    dataset units (the action into each past latent frame). `rollout(state, actions (N, H, A))`
    returns (N, H, C, h, w) latents or (N, H, h, w) tokens. `steps`, `cfg_scale`,
    `temperature` go to the model unchanged (None: the checkpoint's default; a knob the
    family does not have must stay None). `chunk_size` caps the batch of one model call.
    `seed` seeds the model's sampling noise so a planning run can be repeated exactly.
    `common_noise` (default on) gives every candidate of one call the same sampling noise
    (common random numbers): costs then differ only through the actions, not through each
    candidate's own draw of a stochastic sampler, which otherwise swamps a small action effect.
    `precision` ("auto", "fp32", "bf16"; `models.precision`) is resolved per call for its chunk's
    batch: "auto" is bf16 for planning batches of 32 and more on a bf16 CPU. `compile` (False,
    True, "auto"; `models.compiled`) compiles the model's hot methods in place (its weights and
    state_dict untouched); "auto" compiles once about one compilation's time was spent eager.
    """

    def __init__(
        self,
        model,
        steps: int | None = None,
        cfg_scale: float | None = None,
        temperature: float | None = None,
        chunk_size: int | None = None,
        seed: int | None = None,
        common_noise: bool = True,
        precision: str = "auto",
        compile: bool | str = False,
    ):
        from models.compiled import check_compile, compile_world_model
        from models.precision import check_precision

        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"WorldModelDynamics: chunk_size must be >= 1 or None, got {chunk_size}")
        self.precision = check_precision(precision, "WorldModelDynamics: precision")
        check_compile(compile, "WorldModelDynamics: compile")
        self.model = model
        self.action_dim = int(model.action_dim)
        self.num_past = int(model.num_past)
        self.sampling = {"steps": steps, "cfg_scale": cfg_scale, "temperature": temperature}
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.device = model_device(model)
        # A CPU generator: both families draw noise on the generator's device and move it, so
        # a seeded rollout is the same on CPU and CUDA.
        self.generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        self.common_noise = bool(common_noise)
        self.compiled_methods = compile_world_model(model, None, compile)

    def check_state(self, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(past_latents (P, ...), past_actions (P, A)) on the model's device, with clear errors."""
        if not isinstance(state, dict) or "past_latents" not in state or "past_actions" not in state:
            raise ValueError(
                "WorldModelDynamics: state must be a dict with 'past_latents' (P, ...) and 'past_actions' (P, A), "
                f"got {type(state).__name__}"
            )
        past_latents = _as_tensor(state["past_latents"], "state['past_latents']")
        past_actions = _as_tensor(state["past_actions"], "state['past_actions']").float()
        if past_latents.ndim < 3 or past_latents.shape[0] != self.num_past:
            raise ValueError(
                f"WorldModelDynamics: state['past_latents'] must have shape ({self.num_past}, ...) "
                f"(num_past={self.num_past} latent frames), got {tuple(past_latents.shape)}"
            )
        if tuple(past_actions.shape) != (self.num_past, self.action_dim):
            raise ValueError(
                f"WorldModelDynamics: state['past_actions'] must have shape ({self.num_past}, {self.action_dim}), "
                f"got {tuple(past_actions.shape)}"
            )
        if not torch.isfinite(past_actions).all():
            raise ValueError("WorldModelDynamics: state['past_actions'] contains NaN or inf")
        return past_latents.to(self.device), past_actions.to(self.device)

    @torch.no_grad()
    def rollout(self, state: Any, actions) -> torch.Tensor:
        """actions (N, H, A) in dataset units -> predicted latents (N, H, ...) from the shared context."""
        past_latents, past_actions = self.check_state(state)
        actions = _as_tensor(actions, "actions").float()
        if actions.ndim != 3 or actions.shape[-1] != self.action_dim or actions.shape[1] < 1:
            raise ValueError(
                f"WorldModelDynamics: actions must have shape (N, H, {self.action_dim}) with H >= 1, "
                f"got {tuple(actions.shape)}"
            )
        actions = actions.to(self.device)
        chunk_size = self.chunk_size or actions.shape[0]
        precision = resolve_precision(self.precision, self.device, batch_size=min(chunk_size, actions.shape[0]))
        # One seed per call; every row's generator starts from it (the models take one per row).
        call_seed = int(torch.randint(2**62, (1,), generator=self.generator)) if self.common_noise else None
        predictions = []
        for future_actions in actions.split(chunk_size):  # (n, H, A)
            batch = future_actions.shape[0]
            generator = self.generator
            if call_seed is not None:
                generator = [torch.Generator().manual_seed(call_seed) for _ in range(batch)]
            with autocast(precision, self.device):
                predicted = self.model.rollout(
                    past_latents.expand(batch, *past_latents.shape).contiguous(),  # (n, P, ...)
                    past_actions.expand(batch, *past_actions.shape).contiguous(),  # (n, P, A)
                    future_actions,
                    generator=generator,
                    **self.sampling,
                )
            predictions.append(predicted.float() if predicted.is_floating_point() else predicted)
        return torch.cat(predictions, dim=0)  # (N, H, ...)


def load_world_model_dynamics(
    name_or_path: str | os.PathLike, device: str = "cpu", **dynamics_kwargs
) -> tuple[WorldModelDynamics, Any]:
    """(dynamics, tokenizer) from a world-model checkpoint folder or shipped name; the tokenizer is its `tokenizer/`."""
    from models.loading import load_world_model_and_tokenizer

    _, model, tokenizer = load_world_model_and_tokenizer(name_or_path, device=device)
    return WorldModelDynamics(model, **dynamics_kwargs), tokenizer


class WorldModelContext:
    """MPC `state_fn` for world-model planning: the last P encoded frames and the actions into them.

    Call `start(past_frames (P, H, W, 3), past_actions (P, A))` once per episode with the
    frames that end at the current observation; after that every call
    `context(env, observation, info)` with `info["executed_action"]` set (MPC does this)
    encodes the new frame and slides the window. Needs a per-frame tokenizer.
    """

    def __init__(self, tokenizer, num_past: int):
        if getattr(tokenizer, "temporal_compression", 1) != 1:
            raise ValueError(
                "WorldModelContext needs a per-frame tokenizer (temporal_compression 1), "
                f"got temporal_compression {tokenizer.temporal_compression}"
            )
        if int(num_past) < 1:
            raise ValueError(f"WorldModelContext: num_past must be >= 1, got {num_past}")
        self.tokenizer = tokenizer
        self.num_past = int(num_past)
        self.past_latents: deque[torch.Tensor] = deque(maxlen=self.num_past)
        self.past_actions: deque[torch.Tensor] = deque(maxlen=self.num_past)

    def start(self, past_frames, past_actions) -> None:
        frames = _as_tensor(past_frames, "past_frames")
        actions = _as_tensor(past_actions, "past_actions").float().cpu()
        if frames.ndim != 4 or frames.shape[0] != self.num_past:
            raise ValueError(
                f"WorldModelContext: past_frames must have shape ({self.num_past}, H, W, 3), got {tuple(frames.shape)}"
            )
        if actions.ndim != 2 or actions.shape[0] != self.num_past:
            raise ValueError(
                f"WorldModelContext: past_actions must have shape ({self.num_past}, A), got {tuple(actions.shape)}"
            )
        latents = self.tokenizer.encode(frames[None])[0].cpu()  # (P, ...)
        self.past_latents.clear()
        self.past_actions.clear()
        self.past_latents.extend(latents)
        self.past_actions.extend(actions)

    def __call__(self, env, observation, info: dict) -> dict[str, torch.Tensor]:
        if len(self.past_latents) < self.num_past:
            raise ValueError(
                "WorldModelContext: call start(past_frames, past_actions) with the P frames and actions that "
                "lead to the first observation before planning"
            )
        action = info.get("executed_action") if info else None
        if action is not None:
            frame = _as_tensor(np.asarray(observation), "observation")
            self.past_latents.append(self.tokenizer.encode(frame[None, None])[0, 0].cpu())
            self.past_actions.append(torch.as_tensor(np.asarray(action), dtype=torch.float32).reshape(-1))
        return {"past_latents": torch.stack(list(self.past_latents)), "past_actions": torch.stack(list(self.past_actions))}
