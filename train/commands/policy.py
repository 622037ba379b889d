"""`hwm train policy`: PPO trained in a world model's imagination, scored in HWM-Sim-v0 against baselines.

The logic lives in `train/policy/`; this module only maps command-line flags onto a
`PolicyExperiment` (and is reused by `examples/ppo_in_imagination.py`).
"""
from __future__ import annotations

import argparse
import dataclasses

DESCRIPTION = """\
Train a stable-baselines3 PPO agent purely inside a world model (HWM-Flow-v0 / HWM-Masked-v0
through HWMVecEnv) to reach goal images, then score it in HWM-Sim-v0 on `aim` task
episodes of the policy-scoring seed domain (hwm_env/seeds.py), next to PPO trained in the simulator with the same real-frame
budget (the world model's training frames), PPO trained in the simulator without that limit,
a random policy and holding the start pose. Writes OUT/results.json, OUT/results.md (the
README table) and the policies (SB3 zips)."""


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
    parser.add_argument("--model", choices=("flow", "masked"), default="flow", help="world-model family (default flow)")
    parser.add_argument("--checkpoint", default=None, help="world-model checkpoint (default: the shipped <model>-default)")
    parser.add_argument("--data", required=True,
                        help="the data set the world model was trained on (root with train/, or the train split): "
                             "imagined episodes start from its contexts and goals; its frame count is the real "
                             "budget")
    parser.add_argument("--out", default=None, help="output folder (default runs/policy-<model>, e.g. runs/policy-flow)")
    parser.add_argument("--policies", default="mlp",
                        help="imagination rows, comma-separated from mlp (MLP on latents), cnn (CNN on frames); "
                             "the simulator rows use the first (default mlp)")
    parser.add_argument("--rows", default="imagination,sim-budget,sim-unlimited,random,hold",
                        help="rows to run (default: all of imagination,sim-budget,sim-unlimited,random,hold)")
    parser.add_argument("--imagination-steps", type=int, default=None, help="imagined PPO steps (default 60000)")
    parser.add_argument("--real-budget", type=int, default=None,
                        help="simulator frames for the sim-budget row (default: the data set's training frames)")
    parser.add_argument("--upper-bound-steps", type=int, default=None,
                        help="simulator frames for the sim-unlimited row (default 100000)")
    parser.add_argument("--num-envs", type=int, default=None, help="imagined episodes per model call (default 16)")
    parser.add_argument("--sampling-steps", type=int, default=None,
                        help="flow / MaskGIT steps per imagined frame (default: the checkpoint's)")
    parser.add_argument("--sim-envs", type=int, default=None, help="simulators for the sim rows (default 8)")
    parser.add_argument("--horizon", type=int, default=None, help="training episode length in steps (default 24)")
    parser.add_argument("--goal-steps", default=None, metavar="MIN,MAX",
                        help="the goal is the frame k in [MIN, MAX] steps after the start (default 6,18)")
    parser.add_argument("--action-mode", choices=("offset", "delta"), default=None,
                        help="offset (default): u sets target = start + max_offset * u; delta: target += max_delta * u")
    parser.add_argument("--max-offset", type=float, default=None,
                        help="largest target offset from the start command, action units (default 0.4)")
    parser.add_argument("--max-delta", type=float, default=None,
                        help="largest target change per step in delta mode, action units (default 0.1)")
    parser.add_argument("--control", choices=("goal-joints", "all"), default=None,
                        help="action entries the policy moves: the planning benchmark's goal joints (hips, arms, "
                             "neck; the default) or all")
    parser.add_argument("--ppo", nargs="*", default=(), metavar="KEY=VALUE",
                        help="PPO overrides: n_steps, batch_size, n_epochs, learning_rate, gamma, gae_lambda, "
                             "clip_range, ent_coef, log_std_init, hidden")
    parser.add_argument("--episodes", type=int, default=None, help="benchmark episodes (default 20, as hwm bench plan)")
    parser.add_argument("--eval-seed", default=None,
                        help="scoring episodes: set of the policy-scoring seed domain, 'selection', 'test' or an "
                        "integer (default test)")
    parser.add_argument("--seed", type=int, default=0, help="seed of PPO and of the training episodes (default 0)")
    parser.add_argument("--quick", action="store_true", help="tiny steps everywhere (seconds; for tests)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; use 1 when other jobs share the cores)")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--wandb", action="store_true", help="log training curves and results to wandb")
    parser.add_argument("--wandb-project", default="hwm-policy", help="wandb project (default hwm-policy)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def experiment_from_args(args: argparse.Namespace):
    """A `PolicyExperiment` from parsed flags; unset flags keep the defaults (or the --quick ones)."""
    from train.policy import PolicyExperiment, PPOSettings, TaskSettings, quick

    task = {}
    if args.horizon is not None:
        task["horizon"] = args.horizon
    if args.goal_steps is not None:
        parts = args.goal_steps.split(",")
        try:
            task["goal_min_steps"], task["goal_max_steps"] = (int(part) for part in parts)
        except ValueError:
            raise ValueError(f"--goal-steps must be MIN,MAX (two integers), got '{args.goal_steps}'") from None
    for name in ("action_mode", "max_offset", "max_delta"):
        if getattr(args, name) is not None:
            task[name] = getattr(args, name)
    if args.control is not None:
        task["control"] = args.control
    ppo = {}
    fields = {field.name: field.type for field in dataclasses.fields(PPOSettings)}
    for key, text in _key_values(args.ppo).items():
        if key not in fields:
            raise ValueError(f"--ppo: unknown setting '{key}'; known: {sorted(fields)}")
        kind = type(getattr(PPOSettings(), key))
        try:
            ppo[key] = kind(text)
        except ValueError:
            raise ValueError(f"--ppo: {key} must be {kind.__name__}, got '{text}'") from None
    experiment = PolicyExperiment(
        data=args.data, model=args.model, checkpoint=args.checkpoint, out=args.out or f"runs/policy-{args.model}",
        policies=_names(args.policies), rows=_names(args.rows), seed=args.seed, device=args.device,
        sampling_steps=args.sampling_steps,
        wandb=args.wandb, wandb_project=args.wandb_project, progress=not args.no_progress,
    )
    if args.quick:
        experiment = quick(experiment)
    protocol = {}
    if args.episodes is not None:
        protocol["episodes"] = args.episodes
    if args.eval_seed is not None:
        protocol["seed_set"] = args.eval_seed
    explicit = {name: getattr(args, name) for name in
                ("imagination_steps", "real_budget", "upper_bound_steps", "num_envs", "sim_envs")
                if getattr(args, name) is not None}
    return dataclasses.replace(
        experiment, **explicit,
        task=TaskSettings(**{**dataclasses.asdict(experiment.task), **task}),
        ppo=PPOSettings(**{**dataclasses.asdict(experiment.ppo), **ppo}),
        protocol=dataclasses.replace(experiment.protocol, **protocol),
    )


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
