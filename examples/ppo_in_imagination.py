"""Train PPO for a task inside a world model, then score it in the simulator (the same as `hwm train policy`).

Rows of the table it writes (OUT/results.md; OUT/results.json has every number): PPO trained
in the world model's imagination (short episodes from real task starts, reward read off the
predicted frames by the state probe, value bootstrapped at truncation); PPO trained in
HWM-Sim-v0 with as many real frames as the imagination row had; PPO in HWM-Sim-v0 with a larger
budget (upper bound); random; hold; the task's privileged scripted controller. All are scored
on task episodes of the policy-scoring seed domain (hwm_env/seeds.py). The observation, actions
and worlds are documented in `train/policy/`.

    # seconds, with any checkpoint, probe and data set (what the test suite runs)
    python examples/ppo_in_imagination.py --task aim --checkpoint CKPT --probe PROBE --data DATA --out /tmp/p --quick

    # the README table: the shipped Flow-HWM, probe and the data set the model was trained on
    python examples/ppo_in_imagination.py --task aim --data data/sim --upper-bound-steps 150000 --threads 1

Then rank the run's policies in imagination against the simulator:

    hwm bench policies --task aim --run runs/policy-aim-flow --plot assets/policy_ranking_aim.png
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
