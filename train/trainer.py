"""The one training loop shared by the tokenizer, Flow-HWM and Masked-HWM.

A plain loop in the spirit of nanoGPT's `train.py`: the model's own code decides what a
loss is (`objective(model, batch) -> (loss, metrics)`); this file owns everything around
it. Each feature is a few marked lines in `Trainer._train_step` / `Trainer.fit`:

- AdamW (no weight decay on norms, biases, embeddings), linear warm-up + cosine decay
- gradient clipping, EMA of the weights (a shadow copy; `ema_decay=0` turns it off)
- `precision` "auto" | "fp32" | "bf16" (models/precision.py): "auto" trains in bf16 autocast
  wherever the device computes bf16 natively (CUDA from Ampere on; CPUs with AVX-512 BF16 or
  AMX, as this project's Zen 5 is), fp32 elsewhere; `device="auto"`; optional `torch.compile`
- data parallel under `torchrun` (NCCL on GPU, gloo on CPU): DistributedSampler shards
  each global batch; gradients are averaged with one all-reduce after backward
- checkpoints in `out_dir/checkpoints/step_XXXXXXX/` (weights, EMA, optimizer, step,
  RNG states; safetensors + JSON, no pickles), written atomically, the last 2 kept,
  `out_dir/latest` names the newest; a new run resumes from the newest on its own
- tqdm bar (loss, samples/s), `out_dir/metrics.jsonl`, optional wandb
- `fit()` exports the inference checkpoint `out_dir/final` (EMA weights when EMA is on)
- `init_from`: fine-tune; a new run starts from another checkpoint's weights (a resumed
  run does not read it: its own checkpoint is newer)
- a run resumes only with the config it was started with (`check_same_run`): anything but
  the `train` schedule may not change, so another config in the same folder fails at once

`batch_size` is per process (as in nanoGPT): `torchrun --nproc_per_node 2` with batch 16
trains on global batches of 32, the same batches one process with batch 32 sees.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from models.atomic import atomic_write_text
from models.checkpoint import FORMAT_VERSION, atomic_directory_write, save_checkpoint

Objective = Callable[[nn.Module, Any], "tuple[torch.Tensor, Mapping[str, float]]"]

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
FINAL_DIR = "final"
METRICS_FILE = "metrics.jsonl"
KEEP_CHECKPOINTS = 2
STATE_FILE = "trainer_state.json"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
_STEP_DIR = re.compile(r"^step_(\d{7,})$")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping knobs; every model config embeds one as `train`."""

    steps: int = 10_000  # optimizer steps in total (a resumed run continues to this number)
    batch_size: int = 32  # per process
    lr: float = 3e-4  # peak learning rate, reached after warm-up
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    weight_decay: float = 0.05  # applied to Linear/Conv weights only
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 500
    grad_clip: float = 1.0  # max global grad norm; 0 = no clipping
    ema_decay: float = 0.999  # 0 = no EMA; warmed up as min(decay, (1 + t) / (10 + t))
    log_every: int = 50
    val_every: int = 1000  # 0 = no periodic validation
    val_batches: int = 8
    save_every: int = 1000  # a checkpoint is also written at the last step
    num_workers: int = 2  # DataLoader worker processes (0 = load in the training process)
    seed: int = 0
    wandb: bool = False
    wandb_project: str = "hwm"
    device: str = "auto"  # "auto" = cuda if available else cpu; or "cpu", "cuda", "cuda:1"
    compile: bool = False  # torch.compile the model for the objective's calls
    precision: str = "auto"  # "auto" = bf16 autocast where the device has native bf16, else fp32; "fp32"; "bf16"
    init_from: str = ""  # checkpoint folder or shipped name whose weights start a new run ("" = random init)
    init_allow_new: bool = False  # with init_from: parameters the checkpoint lacks keep their initialisation


# --- learning rate and EMA schedules ---------------------------------------------------

def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up to `lr`, then cosine down to `lr * min_lr_ratio` at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    decay_steps = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    min_lr = config.lr * config.min_lr_ratio
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - min_lr)


def ema_decay_at(config: TrainConfig, step: int) -> float:
    """EMA decay after optimizer step `step` (1-based): warmed up so short runs still average
    recent weights instead of the random initialisation."""
    return min(config.ema_decay, (1 + step) / (10 + step))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay only Linear/Conv weight matrices; norms, biases, embeddings, tokens don't decay."""
    decayed, plain, seen = [], [], set()
    decay_types = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d,
                   nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (decayed if isinstance(module, decay_types) and name == "weight" else plain).append(param)
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


# --- data --------------------------------------------------------------------------------

class _StepBatches(Sampler[list[int]]):
    """Endless per-process batches of indices, starting at global step `start_step`.

    Epoch e is DistributedSampler's shuffle with `seed + e`; a process takes every
    world_size-th index, so the ranks' batches at one step together form exactly the
    batch a single process with `world_size * batch_size` would take. Knowing the step is
    enough to resume mid-epoch with the same data order.
    """

    def __init__(self, dataset: Dataset, batch_size: int, rank: int, world_size: int, seed: int, start_step: int):
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                          seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.batches_per_epoch = len(self.sampler) // batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"training data has {len(dataset)} samples, fewer than one global batch "
                f"(batch_size {batch_size} x {world_size} processes); lower batch_size or add data"
            )
        self.start_step = start_step

    def __iter__(self) -> Iterator[list[int]]:
        epoch, skip = divmod(self.start_step, self.batches_per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            indices = list(self.sampler)
            for b in range(skip, self.batches_per_epoch):
                yield indices[b * self.batch_size : (b + 1) * self.batch_size]
            epoch, skip = epoch + 1, 0


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors anywhere in nested dicts/lists/tuples go to `device`; other values stay."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(value, device) for value in batch)
    return batch


# --- distributed ------------------------------------------------------------------------

@dataclass
class _Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # we initialised the process group, so we tear it down

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_name: str) -> _Distributed:
    """Join the `torchrun` process group described by RANK/WORLD_SIZE env vars, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns_group = False
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
        owns_group = True
    return _Distributed(rank=rank, local_rank=local_rank, world_size=world_size, owns_group=owns_group)


def _resolve_device(name: str, distributed: _Distributed) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and distributed.enabled:
        name = f"cuda:{distributed.local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available; use device=cpu or auto")
    return device


def _average_gradients(params: list[nn.Parameter], world_size: int) -> None:
    """Data-parallel step: one all-reduce of all gradients, flattened. Objectives may call
    any model method (not only forward), which DistributedDataParallel's wrapper would not
    see, so the averaging is done here explicitly."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for param in params:
        count = param.numel()
        param.grad = flat[offset : offset + count].view_as(param).to(param.dtype)
        offset += count


# --- checkpoint helpers (no pickles: tensors -> safetensors, the rest -> JSON) ----------

def _flatten_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split `optimizer.state_dict()` into safetensors tensors and a JSON-able skeleton."""
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for param_id, entries in state["state"].items():
        per_param[str(param_id)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{param_id}.{key}"] = value.detach().to("cpu").contiguous()
                per_param[str(param_id)][key] = {"tensor": f"state.{param_id}.{key}"}
            else:
                per_param[str(param_id)][key] = {"value": value}
    return tensors, {"state": per_param, "param_groups": state["param_groups"]}


def _unflatten_optimizer_state(tensors: dict[str, torch.Tensor], skeleton: dict[str, Any],
                               optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    state = {}
    for param_id, entries in skeleton["state"].items():
        state[int(param_id)] = {
            key: tensors[entry["tensor"]] if "tensor" in entry else entry["value"] for key, entry in entries.items()
        }
    groups = []
    for saved, current in zip(skeleton["param_groups"], optimizer.param_groups):
        # JSON turned tuples (betas) into lists; give them back their type.
        groups.append({k: tuple(v) if isinstance(current.get(k), tuple) else v for k, v in saved.items()})
    return {"state": state, "param_groups": groups}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["torch_cuda"] = torch.cuda.get_rng_state()
    name, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    plain = {"numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
             "python": [version, list(internal), gauss]}
    return tensors, plain


def _set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if "torch_cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["torch_cuda"])
    name, keys, position, has_gauss, cached = plain["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))


def _state_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied weights)
    return {name: t.detach().to("cpu").clone().contiguous() for name, t in state_dict.items()}


def checkpoint_dirs(out_dir: str | os.PathLike) -> list[Path]:
    """Complete training checkpoints in `out_dir/checkpoints`, oldest first."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def run_config(checkpoint_config: Mapping[str, Any], identity: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a resumed run must share with the run it continues, as JSON stores it: the checkpoint
    config without the `train` schedule (a resume may change it, e.g. to train longer), plus
    `identity` (what else the run depends on, e.g. the world model a readout decoder serves)."""
    kept = {key: value for key, value in checkpoint_config.items() if key not in ("train", "format_version")}
    return json.loads(json.dumps({**kept, **(identity or {})}))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"model": {"depth": 2}} -> {"model.depth": 2}."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    return {key: value for name, child in tree.items()
            for key, value in _flatten(child, f"{prefix}.{name}" if prefix else str(name)).items()}


def check_same_run(out_dir: str | os.PathLike, config: Mapping[str, Any]) -> None:
    """Raise ValueError if `out_dir`'s newest checkpoint belongs to a run whose `run_config` differs
    from `config` (a resume would otherwise fail later, on mismatched tensors, or mix two runs)."""
    from models.checkpoint import drop_retired_keys

    found = checkpoint_dirs(out_dir)
    if not found:
        return
    state = json.loads((found[-1] / STATE_FILE).read_text())
    stored = state.get("run_config")
    if stored is None:  # written before run configs were stored: compare the checkpoint config
        config_path = found[-1] / "config.json"
        stored = run_config(drop_retired_keys(json.loads(config_path.read_text()), config_path))
        config = {key: value for key, value in config.items() if key in stored or key == "family"}
    old, new = _flatten(stored), _flatten(dict(config))
    differences = [f"{key}: {old.get(key, '(absent)')!r} -> {new.get(key, '(absent)')!r}"
                   for key in sorted(old.keys() | new.keys()) if old.get(key, "(absent)") != new.get(key, "(absent)")]
    if differences:
        shown = "; ".join(differences[:4]) + (f"; {len(differences) - 4} more" if len(differences) > 4 else "")
        raise ValueError(f"{out_dir} holds a run of a different config ({shown}); pass --out for a new run, "
                         "or the same config to resume")


def initialize_from_checkpoint(model: nn.Module, name_or_path: str | os.PathLike, family: str,
                               allow_new: bool = False) -> list[str]:
    """Copy a checkpoint's parameters into `model` (fine-tuning); returns the names it lacked.

    Parameters only: buffers hold statistics of the data (latent and action normalisation)
    and come from the data the new run trains on. Every parameter must be in the checkpoint
    with the same shape, unless `allow_new`: then parameters it lacks keep their
    initialisation, which grows a trained model by modules that start as the identity (the
    tokenizer's `decoder_extra_blocks`) without changing what it computes. Float16 exports
    are cast back to the model's dtype.
    """
    from models.checkpoint import load_checkpoint, state_mismatches

    state_dict, _ = load_checkpoint(name_or_path, family=family)
    own = dict(model.named_parameters())
    missing, _, mismatched = state_mismatches(own, state_dict)  # extra tensors (buffers) are fine
    if (missing and not allow_new) or mismatched:
        hint = "use the same model config" + ("" if allow_new else ", or train.init_allow_new=true to add modules")
        raise ValueError(f"train.init_from={name_or_path}: its weights do not fit this model's architecture "
                         f"(missing {missing[:5]}, shape mismatch {mismatched[:5]}); {hint}")
    if len(missing) == len(own):
        raise ValueError(f"train.init_from={name_or_path}: none of its weights fit this model")
    with torch.no_grad():
        for name, param in own.items():
            if name in state_dict:
                param.copy_(state_dict[name].to(param.dtype))
    return list(missing)


# --- the trainer ------------------------------------------------------------------------

class Trainer:
    """Train `model` by minimising `objective(model, batch)` over `train_data`.

    `checkpoint_config` (a dict with a `family` key) becomes `final/config.json`;
    `extra_files` ({name: path}, e.g. {"tokenizer": folder}) are copied into `final/`;
    `identity`: what else a resume must match (see `run_config`).
    """

    def __init__(self, config: TrainConfig, model: nn.Module, objective: Objective, train_data: Dataset,
                 out_dir: str | os.PathLike, checkpoint_config: dict[str, Any], val_data: Dataset | None = None,
                 extra_files: dict[str, str | os.PathLike] | None = None,
                 identity: Mapping[str, Any] | None = None):
        if config.steps <= 0 or config.batch_size <= 0:
            raise ValueError(f"train.steps and train.batch_size must be positive, got {config.steps}, {config.batch_size}")
        if config.log_every <= 0 or config.save_every <= 0 or config.val_every < 0:
            raise ValueError(f"train.log_every and train.save_every must be positive and train.val_every >= 0, got "
                             f"{config.log_every}, {config.save_every}, {config.val_every}")
        if not 0.0 <= config.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {config.ema_decay}")
        if "family" not in checkpoint_config:
            raise ValueError("checkpoint_config needs a 'family' key (e.g. 'tokenizer', 'flow', 'masked')")
        for name, path in (extra_files or {}).items():
            if not Path(path).exists():
                raise FileNotFoundError(f"extra file '{name}' for the final checkpoint does not exist: {path}")
        self.config = config
        self.objective = objective
        self.train_data, self.val_data = train_data, val_data
        self.out_dir = Path(out_dir)
        self.checkpoint_config = dict(checkpoint_config)
        self.extra_files = {name: Path(path) for name, path in (extra_files or {}).items()}
        self.run_config = run_config(checkpoint_config, identity)
        check_same_run(self.out_dir, self.run_config)  # before anything else reads or writes out_dir

        self.distributed = _setup_distributed(config.device)
        self.device = _resolve_device(config.device, self.distributed)
        from models.precision import resolve_precision

        self.precision = resolve_precision(config.precision, self.device, name="train.precision")
        if config.init_from and not checkpoint_dirs(out_dir):  # a resumed run starts from its own checkpoint
            new = initialize_from_checkpoint(model, config.init_from, checkpoint_config["family"],
                                             allow_new=config.init_allow_new)
            if new and self.distributed.is_main:
                shown = ", ".join(new[:3]) + (", ..." if len(new) > 3 else "")
                print(f"train.init_from={config.init_from}: {len(new)} parameter tensors are new and keep their "
                      f"initialisation ({shown})")
        self.model = model.to(self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [group for group in parameter_groups(self.model, config.weight_decay) if group["params"]]
        if not groups:
            raise ValueError("the model has no trainable parameters (requires_grad=True)")
        self.optimizer = torch.optim.AdamW(groups, lr=config.lr,
                                           betas=tuple(config.betas), fused=self.device.type == "cuda")
        # EMA: a frozen shadow copy, updated after every optimizer step
        self.ema_model = None
        if config.ema_decay > 0:
            self.ema_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.step = 0
        self._wandb_run = None

    # -- public ---------------------------------------------------------------------------

    def fit(self) -> Path:
        """Train to `config.steps` (resuming if a checkpoint exists); return `out_dir/final`."""
        config, dist_info = self.config, self.distributed
        torch.manual_seed(config.seed + dist_info.rank)
        np.random.seed(config.seed + dist_info.rank)
        random.seed(config.seed + dist_info.rank)
        if dist_info.enabled:  # every rank starts from rank 0's weights, as DDP does
            for tensor in self.model.state_dict().values():
                dist.broadcast(tensor, src=0)
            if self.ema_model is not None:
                self.ema_model.load_state_dict(self.model.state_dict())
        if dist_info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._resume()
        train_model = torch.compile(self.model) if config.compile else self.model

        loader = DataLoader(
            self.train_data,
            batch_sampler=_StepBatches(self.train_data, config.batch_size, dist_info.rank, dist_info.world_size,
                                       config.seed, start_step=self.step),
            num_workers=config.num_workers, pin_memory=self.device.type == "cuda",
            # own generator: worker seeding must not consume the global RNG (exact resume)
            generator=torch.Generator().manual_seed(config.seed + dist_info.rank),
            persistent_workers=False,
        )
        batches = iter(loader)
        self._start_wandb()
        progress = _progress_bar(total=config.steps, initial=self.step, disable=not dist_info.is_main)
        loss_sum, metric_sums, interval_steps, interval_start = torch.zeros((), device=self.device), {}, 0, time.perf_counter()

        while self.step < config.steps:
            lr = learning_rate(config, self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss, metrics, grad_norm = self._train_step(train_model, move_to_device(next(batches), self.device))
            self.step += 1
            loss_sum += loss.detach()
            for key, value in metrics.items():
                metric_sums[key] = metric_sums.get(key, 0.0) + float(value)
            interval_steps += 1

            last = self.step == config.steps
            if self.step % config.log_every == 0 or last:  # logging: global-batch mean over the interval
                mean_loss = self._all_mean(loss_sum) / interval_steps
                if not math.isfinite(mean_loss):
                    raise FloatingPointError(
                        f"training loss became {mean_loss} by step {self.step}; lower train.lr or check the data")
                elapsed = time.perf_counter() - interval_start
                record = {"step": self.step, "loss": mean_loss, "lr": lr, "grad_norm": float(grad_norm),
                          "samples_per_s": interval_steps * config.batch_size * dist_info.world_size / elapsed,
                          **{key: total / interval_steps for key, total in metric_sums.items()}}
                self._log(record)
                progress.set_postfix(loss=f"{mean_loss:.4f}", samples_per_s=f"{record['samples_per_s']:.0f}")
                loss_sum, metric_sums, interval_steps = torch.zeros((), device=self.device), {}, 0
            if self.val_data is not None and config.val_every > 0 and (self.step % config.val_every == 0 or last):
                self._log({"step": self.step, **self.validate()})
            if self.step % config.save_every == 0 or last:
                self.save()
            if interval_steps == 0:  # samples/s counts training only, not validation or saving
                interval_start = time.perf_counter()
            progress.update(1)
        progress.close()

        final = self.export_final()
        if self._wandb_run is not None:
            self._wandb_run.finish()
        if dist_info.owns_group:
            dist.destroy_process_group()
        return final

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean objective over `val_batches` fixed batches, for the model and its EMA.

        The RNG is forked and reseeded so every validation sees the same noise/masks: the
        numbers are comparable across steps and training's random stream is untouched.
        """
        config, dist_info = self.config, self.distributed
        sampler = DistributedSampler(self.val_data, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                     shuffle=True, seed=config.seed, drop_last=False)
        loader = DataLoader(self.val_data, batch_size=config.batch_size, sampler=sampler,
                            num_workers=config.num_workers, pin_memory=self.device.type == "cuda")
        models = {"val_": self.model} | ({"val_ema_": self.ema_model} if self.ema_model is not None else {})
        results = {}
        for prefix, model in models.items():
            was_training = model.training
            model.eval()
            sums: dict[str, float] = {}
            count = 0
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(config.seed + dist_info.rank)
                for index, batch in enumerate(loader):
                    if index >= config.val_batches:
                        break
                    with self._autocast():
                        loss, metrics = self.objective(model, move_to_device(batch, self.device))
                    sums["loss"] = sums.get("loss", 0.0) + float(loss)
                    for key, value in metrics.items():
                        sums[key] = sums.get(key, 0.0) + float(value)
                    count += 1
            model.train(was_training)
            for key, total in sums.items():
                results[prefix + key] = self._all_mean(torch.tensor(total, device=self.device)) / max(count, 1)
        return results

    def save(self) -> Path | None:
        """Write `checkpoints/step_XXXXXXX/` atomically (rank 0), point `latest` at it, keep the last 2."""
        # RNG states of every rank (a collective, so every rank calls save)
        rng_tensors, rng_plain = _rng_state()
        if self.distributed.enabled:
            gathered: list[Any] = [None] * self.distributed.world_size
            dist.all_gather_object(gathered, (rng_tensors, rng_plain))
        else:
            gathered = [(rng_tensors, rng_plain)]
        if not self.distributed.is_main:
            dist.barrier()
            return None
        step_dir = self.out_dir / CHECKPOINTS_DIR / f"step_{self.step:07d}"
        optimizer_tensors, optimizer_skeleton = _flatten_optimizer_state(self.optimizer.state_dict())
        with atomic_directory_write(step_dir) as tmp:
            save_file(_state_tensors(self.model.state_dict()), str(tmp / MODEL_FILE))
            if self.ema_model is not None:
                save_file(_state_tensors(self.ema_model.state_dict()), str(tmp / EMA_FILE))
            save_file(optimizer_tensors, str(tmp / OPTIMIZER_FILE))
            save_file({f"rank{r}.{k}": v.cpu().contiguous() for r, (ts, _) in enumerate(gathered) for k, v in ts.items()},
                      str(tmp / RNG_FILE))
            state = {"step": self.step, "world_size": self.distributed.world_size,
                     "train_config": dataclasses.asdict(self.config), "run_config": self.run_config,
                     "optimizer": optimizer_skeleton,
                     "schedule": "lr and EMA decay are functions of step (train/trainer.py)",
                     "rng": [plain for _, plain in gathered]}
            (tmp / STATE_FILE).write_text(json.dumps(state))
            (tmp / "config.json").write_text(json.dumps({"format_version": FORMAT_VERSION, **self.checkpoint_config},
                                                        indent=2, sort_keys=True))
        atomic_write_text(self.out_dir / LATEST_FILE, f"{CHECKPOINTS_DIR}/{step_dir.name}\n")
        for old in checkpoint_dirs(self.out_dir)[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
        if self.distributed.enabled:
            dist.barrier()
        return step_dir

    def export_final(self) -> Path:
        """`out_dir/final`: inference checkpoint (EMA weights if on) + `checkpoint_config` + extra files."""
        final = self.out_dir / FINAL_DIR
        if self.distributed.is_main:
            weights = (self.ema_model or self.model).state_dict()
            save_checkpoint(final, _state_tensors(weights), self.checkpoint_config, self.extra_files)
        if self.distributed.enabled:
            dist.barrier()
        return final

    # -- one step -------------------------------------------------------------------------

    def _train_step(self, train_model: nn.Module, batch: Any) -> tuple[torch.Tensor, Mapping[str, float], torch.Tensor]:
        train_model.train()  # (a torch.compile wrapper passes this on to the model)
        with self._autocast():  # train.precision (bf16 autocast or fp32)
            loss, metrics = self.objective(train_model, batch)
        if loss.dim() != 0:
            raise ValueError(f"objective must return a scalar loss, got shape {tuple(loss.shape)}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.distributed.enabled:  # data parallel: average gradients over ranks
            _average_gradients(self.params, self.distributed.world_size)
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else float("inf")  # clipping
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        self.optimizer.step()
        if self.ema_model is not None:  # EMA of the weights (buffers copied as they are)
            self._update_ema(ema_decay_at(self.config, self.step + 1))
        return loss, metrics, grad_norm

    def _autocast(self):
        """The resolved `train.precision`: bf16 autocast (weights, gradients and optimizer stay fp32) or fp32."""
        from models.precision import autocast

        return autocast(self.precision, self.device)

    @torch.no_grad()
    def _update_ema(self, decay: float) -> None:
        ema_state, model_state = self.ema_model.state_dict(), self.model.state_dict()
        for name, value in model_state.items():
            if value.is_floating_point():
                ema_state[name].lerp_(value, 1.0 - decay)
            else:
                ema_state[name].copy_(value)

    # -- resume ---------------------------------------------------------------------------

    def _resume(self) -> None:
        """Continue from the newest complete checkpoint in `out_dir`, if there is one."""
        if self.distributed.is_main:  # leftovers of a run killed mid-save
            for stale in (self.out_dir / CHECKPOINTS_DIR).glob(".step_*"):
                shutil.rmtree(stale, ignore_errors=True)
        if self.distributed.enabled:
            dist.barrier()
        found = checkpoint_dirs(self.out_dir)
        if not found:
            return
        step_dir = found[-1]
        try:
            state = json.loads((step_dir / STATE_FILE).read_text())
            model_state = load_file(str(step_dir / MODEL_FILE))
            optimizer_tensors = load_file(str(step_dir / OPTIMIZER_FILE))
            rng_tensors = load_file(str(step_dir / RNG_FILE))
        except (OSError, ValueError) as error:
            raise ValueError(f"{step_dir}: cannot resume from this checkpoint ({error}); delete it to start over") from error
        from models.checkpoint import load_state_strict

        load_state_strict(self.model, model_state, step_dir / MODEL_FILE)
        if self.ema_model is not None:
            ema_path = step_dir / EMA_FILE
            load_state_strict(self.ema_model, load_file(str(ema_path)) if ema_path.is_file() else model_state, ema_path)
        self.optimizer.load_state_dict(_unflatten_optimizer_state(optimizer_tensors, state["optimizer"], self.optimizer))
        self.step = int(state["step"])
        rank = self.distributed.rank
        if state["world_size"] == self.distributed.world_size:
            prefix = f"rank{rank}."
            _set_rng_state({k[len(prefix):]: v for k, v in rng_tensors.items() if k.startswith(prefix)}, state["rng"][rank])
        else:  # a different number of processes: reseed deterministically instead
            torch.manual_seed(self.config.seed + rank + 1_000_003 * self.step)
        if self.distributed.is_main:
            self._truncate_metrics(self.step)
            print(f"resumed from {step_dir} at step {self.step}")

    def _truncate_metrics(self, step: int) -> None:
        """Drop log lines written after the checkpoint we resume from (a killed run's tail)."""
        path = self.out_dir / METRICS_FILE
        if not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut off when the run was killed
        atomic_write_text(path, "".join(line + "\n" for line in kept))

    # -- logging --------------------------------------------------------------------------

    def _all_mean(self, value: torch.Tensor) -> float:
        """Mean of a scalar over ranks (the value itself in one process)."""
        if self.distributed.enabled:
            value = value.detach().clone().float()
            dist.all_reduce(value)
            value /= self.distributed.world_size
        return float(value)

    def _log(self, record: dict[str, Any]) -> None:
        if not self.distributed.is_main:
            return
        with open(self.out_dir / METRICS_FILE, "a") as file:
            file.write(json.dumps(record) + "\n")
        if self._wandb_run is not None:
            self._wandb_run.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])

    def _start_wandb(self) -> None:
        if not (self.config.wandb and self.distributed.is_main):
            return
        try:
            import wandb
        except ImportError as error:
            raise ValueError("train.wandb=true needs the wandb package: pip install 'humanoid-world-models[wandb]'") from error
        self._wandb_run = wandb.init(project=self.config.wandb_project, dir=str(self.out_dir),
                                     config={"train": dataclasses.asdict(self.config), **self.checkpoint_config},
                                     name=self.out_dir.name, resume="allow")


def _progress_bar(total: int, initial: int, disable: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=disable, desc="train", unit="step", dynamic_ncols=True)
