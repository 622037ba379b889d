"""Planning benchmark of one task: CEM/MPPI in Flow-HWM, Masked-HWM and the simulator vs baselines.

    python benchmarks/planning.py --task look-at --json benchmarks/results/planning_look-at.json [--quick]

The same as `hwm bench planning` (all flags are shared; `--help` lists them). The
protocol lives in `planners/benchmark/`; the README's planning table is its output.
"""
from __future__ import annotations

import argparse
import sys

from planners.commands import add_arguments, run_planning_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_planning_command(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"planning: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
