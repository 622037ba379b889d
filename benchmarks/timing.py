"""Time a callable the same way in every speed benchmark (wall and CPU seconds per call).

The benchmark scripts run as `python benchmarks/NAME.py`, which puts this folder on
`sys.path`, so they import it as `timing`.
"""
from __future__ import annotations

import time


def timed(function, repeats: int, warmup: int = 2, min_seconds: float = 0.5) -> tuple[float, float]:
    """(wall, CPU) seconds per call, means after warm-up; repeats until `min_seconds` have passed.

    CPU time is what the process itself used: on a shared machine it stays close to the
    uncontended cost while wall time grows with the other processes' load.
    """
    for _ in range(warmup):
        function()
    calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while calls < repeats or time.perf_counter() - start < min_seconds:
        function()
        calls += 1
    return (time.perf_counter() - start) / calls, (time.process_time() - cpu_start) / calls
