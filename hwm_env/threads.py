"""CPU threads that hold up on a shared machine and across `fork`.

Two measured facts decide the settings (README, "Speed"):

- OpenMP's default wait policy keeps idle threads spinning. With another process busy on
  one of two cores, a batch-1 `HWM-Flow-v0` step went from ~12 ms to 100-1,000 ms. PASSIVE
  lets them sleep. The policy is read once, when the OpenMP runtime loads (with torch), so
  `import hwm_env` sets `OMP_WAIT_POLICY=PASSIVE` when the user has not set it and torch is
  not loaded yet. Batch-1 model calls of the envs also run on one thread (`call_threads`):
  then no thread waits at all, whatever the policy.
- A forked child whose parent's torch had used its thread pool hangs at its first parallel
  op (GNU OpenMP). Gymnasium's `AsyncVectorEnv` builds a throwaway env in the parent and
  then forks its workers, so forked children run torch on one thread, as PyTorch's own
  DataLoader workers do; each worker is a process of its own anyway.
"""
from __future__ import annotations

import contextlib
import os
import sys


def set_default_wait_policy() -> None:
    """`OMP_WAIT_POLICY=PASSIVE` unless the user chose a policy or torch (OpenMP) already loaded."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _one_thread_in_forked_child() -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def install_fork_guard() -> None:
    """Forked children (AsyncVectorEnv workers, SB3 SubprocVecEnv) run torch on one thread."""
    os.register_at_fork(after_in_child=_one_thread_in_forked_child)


@contextlib.contextmanager
def call_threads(batch_size: int, device_type: str = "cpu"):
    """Run one model call on one intra-op thread when it holds a single sample on the CPU.

    A batch-1 call of these small models is dominated by per-op overhead, and its threads
    mostly wait for each other; one thread is as fast on an idle machine and far faster when
    another process holds a core. Larger batches keep the process's thread count.
    """
    import torch

    if batch_size != 1 or device_type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
