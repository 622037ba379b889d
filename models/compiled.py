"""Compiled inference: `torch.compile` on a model's hot methods, with an eager fallback.

Compiling is an investment: Inductor spends time generating kernels, then calls can be
cheaper (a batch-1 step is ~3,600 small aten ops whose per-op overhead fusion removes).
Measured on the 2-core Zen 5 CPU (benchmarks/results/speed_settings.md): one compilation of
the shipped Flow-HWM's network + decoder takes 20-170 s (per batch size and precision), it
helped at batch 1 in fp32, did nothing at batch 64 in fp32, and made bf16 at batch 64 4-8x
SLOWER. So the envs, planners and evaluation default to `compile=False`, and
`compile="auto"` follows the ski-rental rule for long-lived users: run eager, and compile
once the eager time already spent in the compiled methods reaches `AUTO_COMPILE_AFTER_S`
(about one compilation's cost here). A short-lived env (a test, a demo) never compiles; a
long one (PPO, a planning benchmark) compiles after a bounded eager start; whatever the
lifetime, the total is at most about twice the better choice made in hindsight.

Compilation can fail in many ways (no C++ compiler, an op Inductor does not handle, a
graph break in a new torch). Any exception while compiling or on a compiled call turns
the method back to eager for good, with one RuntimeWarning naming the error; results are
then the eager ones. The model's weights and `state_dict` are untouched: only the
instance's method attribute is replaced (`uncompile` removes it). Freezing (below) treats
the weights as constants: compile only models whose weights no longer change.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Iterable

import torch
from torch import nn

COMPILE_CHOICES = (False, True, "auto")
# Eager seconds spent in the compiled methods before compile="auto" compiles (ski rental:
# about one compilation's cost on the 2-core CPU, benchmarks/results/speed_settings.md).
AUTO_COMPILE_AFTER_S = 60.0
# Inductor options: freezing folds the (fixed) inference weights into the graph as constants
# (and prepacks them for oneDNN on CPU); the measured best on the 2-core CPU. No CUDA graphs:
# the envs' batch sizes and generators change between calls.
INDUCTOR_OPTIONS = {"freezing": True, "triton.cudagraphs": False}


def check_compile(compile: Any, name: str = "compile") -> bool | str:
    """False, True or "auto", else a ValueError naming the field."""
    if compile is False or compile is True or compile == "auto":
        return compile
    raise ValueError(f"{name} must be False, True or 'auto', got {compile!r}")


class CompiledMethod:
    """`owner.<name>` replaced by a compiled version that falls back to the eager method on any error.

    `compile_seconds`: wall time of the first compiled call (compilation happens there).
    `failed`: the error that sent it back to eager, or None.
    """

    def __init__(self, owner: nn.Module, name: str, options: dict | None = None, dynamic: bool | None = None):
        self.owner, self.name = owner, name
        self.eager: Callable = getattr(owner, name)
        self.options = dict(INDUCTOR_OPTIONS if options is None else options)
        self.dynamic = dynamic
        self.compiled: Callable | None = None
        self.compile_seconds: float | None = None
        self.failed: BaseException | None = None

    def _fall_back(self, error: BaseException) -> None:
        self.failed = error
        warnings.warn(
            f"torch.compile of {type(self.owner).__name__}.{self.name} failed ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else 'no message'}); running it eager",
            RuntimeWarning, stacklevel=3,
        )

    def __call__(self, *args, **kwargs):
        if self.failed is not None:
            return self.eager(*args, **kwargs)
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.eager, dynamic=self.dynamic, options=self.options)
            if self.compile_seconds is None:
                start = time.perf_counter()
                output = self.compiled(*args, **kwargs)
                self.compile_seconds = time.perf_counter() - start
                return output
            return self.compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 (any compiler failure means: run eager)
            self._fall_back(error)
            return self.eager(*args, **kwargs)


class AutoCompiledMethod(CompiledMethod):
    """Eager until `after_s` seconds were spent in the method, then compiled (ski rental)."""

    def __init__(self, owner: nn.Module, name: str, after_s: float = AUTO_COMPILE_AFTER_S, **kwargs):
        super().__init__(owner, name, **kwargs)
        self.after_s = float(after_s)
        self.eager_seconds = 0.0

    @property
    def active(self) -> bool:
        return self.eager_seconds >= self.after_s

    def __call__(self, *args, **kwargs):
        if self.active:
            return super().__call__(*args, **kwargs)
        start = time.perf_counter()
        output = self.eager(*args, **kwargs)
        self.eager_seconds += time.perf_counter() - start
        return output


def compile_methods(owner: nn.Module, names: Iterable[str] = ("forward",), compile: bool | str = True,
                    after_s: float = AUTO_COMPILE_AFTER_S, options: dict | None = None) -> list[CompiledMethod]:
    """Replace `owner.<name>` for each name by a compiled (True) or ski-rental (`"auto"`) method.

    Idempotent: a method already replaced is returned as it is. `compile=False` returns [].
    """
    compile = check_compile(compile)
    if compile is False:
        return []
    methods = []
    for name in names:
        current = getattr(owner, name)
        if isinstance(current, CompiledMethod):
            methods.append(current)
            continue
        if compile == "auto":
            method = AutoCompiledMethod(owner, name, after_s=after_s, options=options)
        else:
            method = CompiledMethod(owner, name, options=options)
        setattr(owner, name, method)  # an instance attribute: nn.Module.__call__ finds it for "forward"
        methods.append(method)
    return methods


def uncompile(owner: nn.Module, names: Iterable[str] = ("forward",)) -> None:
    """Undo `compile_methods`: the class's eager methods are used again."""
    for name in names:
        if isinstance(owner.__dict__.get(name), CompiledMethod):
            del owner.__dict__[name]


def inference_methods(model: nn.Module) -> list[tuple[nn.Module, tuple[str, ...]]]:
    """The (module, method names) whose calls make up a world model's prediction.

    Flow-HWM: its MMDiT network's forward (one call per sampling step). Masked-HWM: its
    transformer's context encoding and its per-MaskGIT-step future logits. Another model:
    its own forward.
    """
    network = getattr(model, "network", None)
    if isinstance(network, nn.Module):
        return [(network, ("forward",))]
    transformer = getattr(model, "transformer", None)
    if isinstance(transformer, nn.Module) and hasattr(transformer, "future_logits"):
        return [(transformer, ("encode_context", "future_logits"))]
    return [(model, ("forward",))]


def compile_world_model(model: nn.Module, tokenizer=None, compile: bool | str = True,
                        after_s: float = AUTO_COMPILE_AFTER_S) -> list[CompiledMethod]:
    """Compile a world model's inference methods (and a built-in tokenizer's decoder) in place."""
    targets = inference_methods(model)
    decoder = getattr(tokenizer, "decoder", None)
    if isinstance(decoder, nn.Module):
        targets.append((decoder, ("forward",)))
    methods = []
    for owner, names in targets:
        methods += compile_methods(owner, names, compile, after_s=after_s)
    return methods


def compile_report(methods: list[CompiledMethod]) -> dict[str, Any]:
    """{"compiled": bool, "compile_seconds": float | None, "fell_back": [errors]} for logs and benchmarks."""
    seconds = [m.compile_seconds for m in methods if m.compile_seconds is not None]
    return {
        "compiled": bool(methods) and any(m.compiled is not None and m.failed is None for m in methods),
        "compile_seconds": sum(seconds) if seconds else None,
        "fell_back": [f"{type(m.owner).__name__}.{m.name}: {type(m.failed).__name__}" for m in methods if m.failed],
    }
