"""`hwm train policy`: PPO trained in a world model's imagination, scored in HWM-Sim-v0 against baselines.

The logic lives in `train/policy/`; this module only maps command-line flags onto a
`PolicyExperiment` (and is reused by `examples/ppo_in_imagination.py`).
"""
from __future__ import annotations

import argparse
import dataclasses

DESCRIPTION = """\
Train a stable-baselines3 PPO policy for a task (--task aim|look-at|reach|push) inside a world
model's imagination (short episodes from real task starts, reward read off predicted frames by
the state probe, value bootstrapped at truncation), then score it in HWM-Sim-v0 on task
episodes of the policy-scoring seed domain (hwm_env/seeds.py), next to PPO trained in the
simulator with the same real frames, PPO in the simulator without that limit (upper bound),
random, hold and the task's privileged scripted controller. Writes OUT/results.json,
OUT/results.md (the README table), the policies (SB3 zips) and snapshots along the
imagination run (for hwm bench policies)."""


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["train"].add_parser(
        "policy", help="train PPO in a world model's imagination and score it in HWM-Sim-v0",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run_command)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip().lower() for name in text.split(",") if name.strip())


def _key_values(pairs) -> dict[str, str]:
    values = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--ppo: expected KEY=VALUE, got '{pair}'")
        values[key.strip().replace("-", "_")] = value.strip()
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="aim", help="the task: aim, look-at, reach, push (default aim)")
    parser.add_argument("--model", choices=("flow", "masked"), default="flow", help="world-model family (default flow)")
    parser.add_argument("--checkpoint", default=None, help="world-model checkpoint (default: the shipped <model>-default)")
    parser.add_argument("--probe", default="probe-default",
                        help="state probe: the imagined reward and both worlds' observation (default probe-default)")
    parser.add_argument("--data", required=True,
                        help="the data set the world model was trained on (root with train/, or the train split): "
                             "its frame count is part of the real budget")
    parser.add_argument("--out", default=None, help="output folder (default runs/policy-<task>-<model>)")
    parser.add_argument("--rows", default=None,
                        help="rows to run, comma-separated (default: all of imagination, sim-budget, sim-unlimited, "
                             "random, hold, scripted)")
    parser.add_argument("--imagination-steps", type=int, default=None, help="imagined PPO steps (default 100000)")
    parser.add_argument("--horizon", type=int, default=None,
                        help="steps per training episode in both worlds, value bootstrapped at truncation (default 16)")
    parser.add_argument("--pool-episodes", type=int, default=None,
                        help="real task starts imagined episodes begin from (default 256)")
    parser.add_argument("--real-budget", type=int, default=None,
                        help="simulator frames for the sim-budget row (default: the data set's training frames + "
                             "the pool's)")
    parser.add_argument("--upper-bound-steps", type=int, default=None,
                        help="simulator frames for the sim-unlimited row (default 1000000)")
    parser.add_argument("--num-envs", type=int, default=None, help="imagined episodes per model call (default 64)")
    parser.add_argument("--sim-envs", type=int, default=None, help="simulators for the sim rows (default 16)")
    parser.add_argument("--sampling-steps", type=int, default=None,
                        help="flow / MaskGIT steps per imagined frame (default: the checkpoint's)")
    parser.add_argument("--precision", default=None, help="world-model inference precision: auto, fp32, bf16")
    parser.add_argument("--snapshots", type=int, default=None,
                        help="policy checkpoints saved along the imagination run (default 4)")
    parser.add_argument("--action-mode", default=None,
                        help="offset (default): target = start + max_offset * u; delta: target += max_delta * u")
    parser.add_argument("--max-offset", type=float, default=None,
                        help="largest target offset from the start command, action units (default 1.0)")
    parser.add_argument("--max-delta", type=float, default=None,
                        help="largest target change per step in delta mode, action units (default 0.1)")
    parser.add_argument("--ppo", nargs="*", default=(), metavar="KEY=VALUE",
                        help="PPO overrides: n_steps, batch_size, n_epochs, learning_rate, gamma, gae_lambda, "
                             "clip_range, ent_coef, log_std_init, hidden")
    parser.add_argument("--episodes", type=int, default=None, help="scoring episodes (default 100)")
    parser.add_argument("--eval-seed", default=None,
                        help="scoring episodes: set of the policy-scoring seed domain, 'selection', 'test' or an "
                        "integer (default test)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of PPO and of the policy-training stream of starts (default 0)")
    parser.add_argument("--quick", action="store_true", help="tiny steps everywhere (seconds; for tests)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; use 1 when other jobs share the cores)")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--wandb", action="store_true", help="log training curves and results to wandb")
    parser.add_argument("--wandb-project", default="hwm-policy", help="wandb project (default hwm-policy)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def experiment_from_args(args: argparse.Namespace):
    """A `PolicyExperiment` from parsed flags; unset flags keep the defaults (or the --quick ones)."""
    from train.policy import ControlSettings, PolicyExperiment, PPOSettings, quick

    control = {name: getattr(args, name) for name in ("action_mode", "max_offset", "max_delta")
               if getattr(args, name) is not None}
    ppo = {}
    for key, text in _key_values(args.ppo).items():
        if key not in {field.name for field in dataclasses.fields(PPOSettings)}:
            raise ValueError(f"--ppo: unknown setting '{key}'; known: {sorted(f.name for f in dataclasses.fields(PPOSettings))}")
        kind = type(getattr(PPOSettings(), key))
        try:
            ppo[key] = kind(text)
        except ValueError:
            raise ValueError(f"--ppo: {key} must be {kind.__name__}, got '{text}'") from None
    common = dict(data=args.data, task=args.task, model=args.model, checkpoint=args.checkpoint, probe=args.probe,
                  out=args.out, seed=args.seed, device=args.device,
                  sampling_steps=args.sampling_steps, wandb=args.wandb, wandb_project=args.wandb_project,
                  progress=not args.no_progress, control=ControlSettings(**control),
                  ppo=PPOSettings(**ppo))
    if args.precision is not None:
        common["precision"] = args.precision
    if args.rows is not None:
        common["rows"] = _names(args.rows)
    explicit = {name: getattr(args, name) for name in
                ("imagination_steps", "horizon", "pool_episodes", "real_budget", "upper_bound_steps", "num_envs",
                 "sim_envs", "snapshots") if getattr(args, name) is not None}
    if args.quick:  # quick sizes first, so the checks of PolicyExperiment see them
        experiment = quick(PolicyExperiment(**common, imagination_steps=10**9, upper_bound_steps=10**9))
        experiment = dataclasses.replace(experiment, **explicit, ppo=PPOSettings(**{
            **dataclasses.asdict(experiment.ppo), **ppo}))
    else:
        experiment = PolicyExperiment(**common, **explicit)
    scoring = {}
    if args.episodes is not None:
        scoring["episodes"] = args.episodes
    if args.eval_seed is not None:
        scoring["seed_set"] = args.eval_seed
    return dataclasses.replace(experiment, scoring=dataclasses.replace(experiment.scoring, **scoring)) if scoring \
        else experiment


def run_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from train.policy import RESULTS_JSON, RESULTS_MARKDOWN, markdown_table, run_policy_experiment

    experiment = experiment_from_args(args)
    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    results = run_policy_experiment(experiment)
    print()
    print(markdown_table(results))
    out = Path(experiment.out)
    print(f"\nwrote {out / RESULTS_JSON}, {out / RESULTS_MARKDOWN} and the policies in {out}")
    return 0
