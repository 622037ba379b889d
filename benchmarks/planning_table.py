"""The README's planning table: the per-task results of `hwm bench planning` side by side.

    python benchmarks/planning_table.py [RESULTS.json ...] [--out TABLE.md]

Each JSON is what `hwm bench planning --task T --json ...` wrote (its rows of every model and
planner); by default `benchmarks/results/planning_T.json` of every task that has one, in the
order of `hwm_env.tasks.TASKS`. The table puts MPPI and CEM next to each other per task and
model (`planners.benchmark.report.summary_table`) and is printed (and written to --out).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.atomic import atomic_write_text
from planners.benchmark.report import summary_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="*", type=Path,
                        help="per-task JSON files of hwm bench planning (default: benchmarks/results/planning_T.json)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here (Markdown)")
    args = parser.parse_args(argv)
    if not args.results:
        from hwm_env.tasks import TASKS

        results = Path(__file__).resolve().parent / "results"
        args.results = [results / f"planning_{task}.json" for task in TASKS if (results / f"planning_{task}.json").is_file()]
        if not args.results:
            print(f"planning_table: error: no planning_T.json in {results}; pass the files", file=sys.stderr)
            return 2
    rows = []
    for path in args.results:
        try:
            loaded = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            print(f"planning_table: error: {path}: {error}", file=sys.stderr)
            return 2
        if not isinstance(loaded, list) or not all(isinstance(row, dict) and "task" in row for row in loaded):
            print(f"planning_table: error: {path}: expected the JSON list of rows that hwm bench planning writes",
                  file=sys.stderr)
            return 2
        rows += loaded
    table = summary_table(rows)
    print(table)
    if args.out is not None:
        atomic_write_text(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
