"""The one place that decides numeric precision: fp32, or bf16 autocast.

Why bf16 on a CPU: on the project's Zen 5 CPU (AVX-512 BF16) oneDNN's bf16 matrix
multiplies run at ~2x its fp32 ones, and the tokenizer's convolutions gain as much. Why
not always: a batch-1 world-model call is bound by per-op overhead, not arithmetic, and
autocast adds a cast per op, so there bf16 is slower (measured, 2 threads, batch 1 -> 64:
Flow-HWM predict 0.99x / 1.15x / 1.22x / 1.61x at batch 1 / 4 / 16 / 64, Masked-HWM
0.86x / 0.89x / 0.99x / 1.40x, the tokenizer decode 1.2x-1.8x; numbers in
benchmarks/results/speed_settings.md). Hence the rule of `resolve_precision("auto")`:

| device | "auto" gives |
|---|---|
| CUDA with bf16 (Ampere and newer) | bf16 (what the models always used on CUDA) |
| CPU with native bf16 (AVX-512 BF16 or AMX) | bf16 for batches >= `CPU_BF16_MIN_BATCH` (32) and training, fp32 below |
| anything else | fp32 |

"bf16" where the device has no native bf16 raises ValueError rather than falling back:
PyTorch would emulate it on such CPUs, slower than fp32, which is never what was asked for.

`autocast(precision, device)` is the context the callers (envs, planners, evaluation,
trainer) wrap their model calls in. The models' own inference code (`model_autocast`)
keeps its historical default (bf16 on CUDA, fp32 on CPU) unless a caller chose, so a
caller's "fp32" is fp32 all the way down.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Iterator

import torch

PRECISIONS = ("auto", "fp32", "bf16")
# Smallest batch given bf16 by "auto" on a CPU. On a quiet machine Flow-HWM gains from batch 4
# (1.15x) and Masked-HWM only breaks even at 16 (0.99x); on a loaded one (load average 5-7 on
# the 2 cores) bf16 lost at 16 (a CEM replan of 16 samples 3x slower) and still won at 64 for
# Flow-HWM. 32 keeps the planners' 16-candidate batches and `hwm eval model`'s batches of 16 in
# fp32 and gives bf16 to the 64-env vector env and training.
CPU_BF16_MIN_BATCH = 32

_chosen: contextvars.ContextVar[str | None] = contextvars.ContextVar("hwm_precision", default=None)


def _as_device(device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    device = str(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


@functools.lru_cache(maxsize=None)
def _cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX-BF16, as PyTorch's own CPU feature detection (cpuinfo) reports them.

    `torch.ops.mkldnn._is_mkldnn_bf16_supported()` is not the question asked here: it is
    True on any AVX-512 CPU, where oneDNN emulates bf16 more slowly than fp32. When the
    private torch.cpu probes are missing (another torch version), /proc/cpuinfo's flags answer.
    """
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(callable(probe) for probe in probes):
        try:
            return any(bool(probe()) for probe in probes)
        except RuntimeError:
            pass
    try:
        with open("/proc/cpuinfo") as file:
            flags = set(file.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def bf16_supported(device="cpu") -> bool:
    """Whether `device` computes bf16 natively (fast), not merely emulates it."""
    device = _as_device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and _cpu_has_native_bf16()
    return False


def check_precision(precision: str, name: str = "precision") -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"{name} must be one of {list(PRECISIONS)}, got {precision!r}")
    return precision


def resolve_precision(precision: str = "auto", device="cpu", batch_size: int | None = None,
                      name: str = "precision") -> str:
    """"fp32" or "bf16" for `device` at `batch_size` (None: large batches, e.g. training); see the table above."""
    check_precision(precision, name)
    device = _as_device(device)
    supported = bf16_supported(device)
    if precision == "bf16" and not supported:
        raise ValueError(
            f"{name}='bf16' but {device} has no native bf16 (CPU: AVX-512 BF16 or AMX; CUDA: compute capability "
            f">= 8.0); use {name}='fp32' or 'auto'"
        )
    if precision != "auto":
        return precision
    if not supported:
        return "fp32"
    if device.type == "cpu" and batch_size is not None and batch_size < CPU_BF16_MIN_BATCH:
        return "fp32"
    return "bf16"


@contextlib.contextmanager
def autocast(precision: str, device="cpu") -> Iterator[None]:
    """Run the block in `precision` ("fp32" or "bf16"; resolve "auto" first) on `device`'s autocast."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"autocast takes a resolved precision 'fp32' or 'bf16', got {precision!r}")
    device = _as_device(device)
    token = _chosen.set(precision)
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            yield
    finally:
        _chosen.reset(token)


def chosen_precision() -> str | None:
    """The precision of the innermost `autocast` block around this call, or None."""
    return _chosen.get()


def model_autocast(device):
    """The autocast a model's own inference code runs under.

    Inside a caller's `autocast` block: nothing more (the caller's choice holds). Otherwise
    the models' historical default: bf16 autocast on CUDA, fp32 elsewhere.
    """
    device = _as_device(device)
    if _chosen.get() is None and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
