"""The `hwm` command line.

One entry point with command groups (`data`, `train`, `eval`, `model`, `bench`) and
`demo`. Each feature module owns its subcommands through a `register(groups)` function,
so this file only names the modules (the one place where `hwm_env` names `train`); heavy
imports (torch, mujoco) stay inside the command functions so `hwm --help` is instant.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Set before torch loads: OpenMP spin-waiting slows small ops badly on shared cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

GROUPS = {
    "data": "make, inspect and pre-encode data sets",
    "train": "train tokenizers, world models and policies",
    "eval": "evaluate tokenizers and world models",
    "model": "inspect model architectures",
    "bench": "run benchmarks",
}

# Modules that add subcommands. Each defines
# `register(groups: dict[str, argparse._SubParsersAction]) -> None`; top-level commands
# (like `demo`) receive the root subparsers under the key "".
COMMAND_MODULES = [
    "train.data.commands",
    "hwm_env.sim.commands",
    "train.commands.tokenizer",
    "train.commands.evaluate",
    "train.commands.onex",
    "train.commands.model_info",
    "train.commands.export",
    "train.commands.flow",
    "train.commands.masked",
    "train.commands.readout",
    "train.commands.probe",
    "train.commands.demo",
    "planners.commands",
    "train.commands.policy",
    "train.commands.policy_ranking",
]


def build_parser() -> argparse.ArgumentParser:
    from hwm_env import __version__

    parser = argparse.ArgumentParser(
        prog="hwm",
        description="Humanoid World Models: train video world models and use them as Gymnasium envs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    root = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {"": root}
    for name, help_text in GROUPS.items():
        group_parser = root.add_parser(name, help=help_text)
        groups[name] = group_parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
        group_parser.set_defaults(func=lambda args, p=group_parser: p.print_help() or 1)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(groups)
    parser.epilog = "every command (`hwm COMMAND --help` for its options):\n" + command_list(root)
    return parser


def command_list(root: argparse._SubParsersAction) -> str:
    """One line per command, groups expanded: `hwm data sim   make a training set ...`."""
    lines = []
    for choice in root._choices_actions:
        group = next((a for a in root.choices[choice.dest]._actions if isinstance(a, argparse._SubParsersAction)), None)
        entries = [(f"{choice.dest} {sub.dest}", sub.help) for sub in group._choices_actions] if group else []
        lines += [f"  hwm {name:<24} {text}" for name, text in entries or [(choice.dest, choice.help)]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        print(f"hwm: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `hwm data info ... | head`
        sys.stderr.close()
        return 0
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
