"""Train PPO purely inside a world model, then score it in the simulator (the same as `hwm train policy`).

Rows of the table it writes (OUT/results.md; OUT/results.json has every number):
PPO trained in the world model's imagination; PPO trained in HWM-Sim-v0 with as many real
frames as the world model was trained on; PPO in HWM-Sim-v0 without that limit (upper
bound); a random policy; holding the start pose. All are scored on `aim` task episodes of
the policy-scoring seed domain (hwm_env/seeds.py). The task, reward and observations are documented in
`train/policy/__init__.py`.

    # seconds, with any checkpoint and data set (what the test suite runs)
    python examples/ppo_in_imagination.py --checkpoint CKPT --data DATA --out /tmp/policy --quick

    # the README table: the shipped Flow-HWM and the data set it was trained on
    python examples/ppo_in_imagination.py --model flow --data data/sim --out runs/policy-flow
"""
from __future__ import annotations

import argparse
import sys

from train.commands.policy import DESCRIPTION, add_arguments, run_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"ppo_in_imagination: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
