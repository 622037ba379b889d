"""`hwm bench policies`: rank policies in imagination and in HWM-Sim-v0 (logic: `train/policy/ranking.py`)."""
from __future__ import annotations

import argparse
import shlex
import sys

DESCRIPTION = """\
Score at least 8 policies of spread quality (the PPO snapshots and finals of a `hwm train policy`
run, noisy versions, aim's feed-forward controller, random, hold) on the same task episodes in a
world model's imagination and in HWM-Sim-v0; report both success rates, Spearman and Kendall tau
between the rankings, each policy's rate error, and a scatter plot."""


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["bench"].add_parser("policies", help="rank policies in imagination against HWM-Sim-v0",
                                        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="aim", help="the task: aim, look-at, reach, push (default aim)")
    parser.add_argument("--run", default=None, help="OUT folder of `hwm train policy` whose policies to rank")
    parser.add_argument("--model", choices=("flow", "masked"), default="flow", help="world-model family (default flow)")
    parser.add_argument("--checkpoint", default=None, help="world-model checkpoint (default: the shipped <model>-default)")
    parser.add_argument("--probe", default="probe-default", help="state probe (default probe-default)")
    parser.add_argument("--episodes", type=int, default=50, help="scoring episodes per policy and world (default 50)")
    parser.add_argument("--eval-seed", default="test", help="policy-scoring seed set: selection, test or an integer")
    parser.add_argument("--batch-size", type=int, default=64, help="imagined episodes per model call (default 64)")
    parser.add_argument("--sampling-steps", type=int, default=None, help="flow / MaskGIT steps per imagined frame")
    parser.add_argument("--precision", default="auto", help="world-model inference precision: auto, fp32, bf16")
    parser.add_argument("--max-offset", type=float, default=None, help="as the run was trained with (default 1.0)")
    parser.add_argument("--out", default=None, help="writes OUT.json and OUT.md (default runs/policies-<task>-<model>)")
    parser.add_argument("--plot", default=None, help="scatter plot PNG (needs matplotlib)")
    parser.add_argument("--quick", action="store_true", help="2 episodes of 4 frames (seconds; for tests)")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    import dataclasses

    from planners.benchmark import QUICK_PROTOCOL, Protocol
    from train.policy import ControlSettings, PolicyExperiment, PolicySetup
    from train.policy.ranking import rank_policies, run_policies, scatter_plot, write_ranking

    if args.episodes < 2:
        raise ValueError(f"--episodes must be >= 2, got {args.episodes}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    scoring = Protocol(task=args.task, episodes=args.episodes, seed_set=args.eval_seed)
    if args.quick:
        scoring = dataclasses.replace(scoring, **QUICK_PROTOCOL)
    control = ControlSettings() if args.max_offset is None else ControlSettings(max_offset=args.max_offset)
    experiment = PolicyExperiment(data="", task=args.task, model=args.model, checkpoint=args.checkpoint,
                                  probe=args.probe, rows=("random",), scoring=scoring, control=control,
                                  sampling_steps=args.sampling_steps, precision=args.precision, device=args.device,
                                  progress=not args.no_progress)
    setup = PolicySetup(experiment)
    try:
        policies = run_policies(args.run, setup)
        results = rank_policies(policies, setup, args.batch_size)
    finally:
        setup.close()
    command = "hwm " + shlex.join(sys.argv[1:]) if sys.argv[0].endswith("hwm") else shlex.join(sys.argv)
    json_path, markdown_path = write_ranking(results, args.out or f"runs/policies-{args.task}-{args.model}", command)
    print(markdown_path.read_text())
    print(f"wrote {json_path} and {markdown_path}")
    if args.plot:
        print(f"wrote {scatter_plot(results, args.plot)}")
    return 0
