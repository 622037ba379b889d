"""`hwm bench planning`: the planning benchmark of one task (protocol in `planners.benchmark`).

Writes the rows as JSON (`--json PATH`) with a Markdown table beside it (same name, `.md`),
saved again after every row so a long run keeps what it measured; prints the table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Sequence

from models.atomic import atomic_write_text
from planners.benchmark import COSTS, MODELS, PLANNER_DEFAULTS, PLANNERS, QUICK_PROTOCOL, Protocol, add_oracle_gaps


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["bench"].add_parser(
        "planning",
        help="a task in HWM-Sim-v0: CEM/MPPI in Flow-HWM, Masked-HWM and the simulator vs baselines",
        description="Plan in a model, act in HWM-Sim-v0: task episodes from the planning seed domain (the goal "
        "shown as an image), MPC with CEM and MPPI over each world model and over the simulator itself (oracle), "
        "plus random, hold-pose and scripted baselines. Reports success rates with 95%% intervals, the oracle gap, "
        "the final task error and seconds per plan.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run_planning_command)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The field defaults, without building a Protocol (that loads the task). The task names are
    # not `choices`: hwm_env.tasks loads MuJoCo, which every `hwm` command would then pay for;
    # Protocol refuses an unknown name, listing the known ones.
    defaults = argparse.Namespace(**{field.name: field.default for field in dataclasses.fields(Protocol)})
    parser.add_argument("--task", default=defaults.task,
                        help=f"the task: aim, look-at, reach or push (hwm_env/tasks; default {defaults.task})")
    parser.add_argument("--models", default=None,
                        help=f"comma-separated rows to run, from {','.join(MODELS)} (default: all; world models whose "
                        "shipped checkpoint is missing are skipped unless named here)")
    parser.add_argument("--planners", default=",".join(PLANNERS), help="comma-separated: cem,mppi (default: both)")
    parser.add_argument("--flow", default=None, help="Flow-HWM checkpoint folder (default: the shipped flow-default)")
    parser.add_argument("--masked", default=None,
                        help="Masked-HWM checkpoint folder (default: the shipped masked-default)")
    parser.add_argument("--oracle-tokenizer", default=None,
                        help="tokenizer that encodes the oracle's rendered frames for the goal cost (default: the "
                        "Flow-HWM checkpoint's, else the Masked-HWM one's, else the shipped tokenizer-continuous)")
    parser.add_argument("--episodes", type=int, default=None, help=f"start/goal pairs (default {defaults.episodes})")
    parser.add_argument("--steps", type=int, default=None,
                        help="frames executed per episode (default: the task's episode length)")
    parser.add_argument("--action-repeat", type=int, default=None,
                        help=f"frames each planned action is held (default {defaults.action_repeat})")
    parser.add_argument("--replan-every", type=int, default=None,
                        help=f"held actions executed between plans (default {defaults.replan_every})")
    parser.add_argument("--seed-set", default=defaults.seed_set,
                        help="episodes of the planning seed domain: 'selection' (choose settings on it), 'test' "
                        f"(report it) or an integer (default {defaults.seed_set})")
    parser.add_argument("--cost-reduce", choices=("final", "sum"), default=defaults.cost_reduce,
                        help="goal distance of the last planned frame or summed over the plan (default final)")
    parser.add_argument("--cost", choices=COSTS, default=defaults.cost,
                        help="cost: 'goal' latent MSE to the encoded goal image, 'image' MSE of decoded frames to it "
                        "with both blurred, 'probe' minus the task's reward read off predicted frames by --probe "
                        f"(default {defaults.cost})")
    parser.add_argument("--probe", default=defaults.probe,
                        help=f"state probe of --cost probe (default {defaults.probe})")
    parser.add_argument("--cost-blur", type=float, default=defaults.cost_blur,
                        help=f"--cost image: Gaussian blur sigma in pixels (default {defaults.cost_blur:g})")
    for planner, values in PLANNER_DEFAULTS.items():
        shown = " ".join(f"{key}={value}" for key, value in values.items())
        parser.add_argument(f"--{planner}", nargs="+", metavar="KEY=VALUE", default=None,
                            help=f"{planner.upper()} hyper-parameters (default: {shown}; filter_scale is the soft "
                                 "deadband across replans, planners/plan_filter.py, 0 turns it off)")
    parser.add_argument("--flow-steps", type=int, default=None,
                        help="Flow-HWM sampling steps per frame (default 1: plans look one held action ahead "
                             "of real frames, where the fastest sampler serves)")
    parser.add_argument("--masked-steps", type=int, default=None,
                        help="Masked-HWM decoding steps per frame (default 1, greedy)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings for a smoke test: 2 episodes of 4 frames, 6 samples, 1 iteration")
    parser.add_argument("--device", default="auto", help="torch device for the models (default: cuda if available)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="world-model inference precision (models/precision.py; default auto: bf16 where the "
                        "device has it and the batch of candidates is large enough to gain)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--json", default=None, help="write the rows here (and the Markdown table beside it, .md)")
    parser.add_argument("--update", action="store_true",
                        help="with --json: replace only the rows of the models and planners run now, keep the file's "
                        "other rows")


def protocol_from_args(args: argparse.Namespace) -> Protocol:
    """Protocol defaults, then --quick's, then every flag given explicitly."""
    values = dict(QUICK_PROTOCOL) if args.quick else {}
    for name in ("episodes", "steps", "action_repeat", "replan_every"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return Protocol(task=args.task, seed_set=args.seed_set, cost_reduce=args.cost_reduce, cost=args.cost,
                    cost_blur=args.cost_blur, probe=args.probe, **values)


def parse_names(text: str, known: Sequence[str], flag: str) -> tuple[str, ...]:
    """"flow, oracle" -> ("flow", "oracle"), refusing unknown or repeated names."""
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    if not names:
        raise ValueError(f"{flag} needs at least one of {list(known)}")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"{flag}: unknown name(s) {unknown}; known: {list(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{flag}: a name is repeated in '{text}'")
    return names


def run_planning_command(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    import hwm_env  # noqa: F401  (headless MuJoCo rendering)
    from planners.benchmark import markdown_table, parse_overrides, run_planning_benchmark

    models = parse_names(args.models, MODELS, "--models") if args.models is not None else MODELS
    planners = parse_names(args.planners, PLANNERS, "--planners")
    protocol = protocol_from_args(args)
    overrides = {planner: parse_overrides(planner, getattr(args, planner)) for planner in PLANNERS}
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    for flag in ("flow_steps", "masked_steps"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    required = set(models) if args.models is not None else set()
    required |= {kind for kind in ("flow", "masked") if getattr(args, kind) is not None and kind in models}
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.set_num_threads(args.threads)
    json_path = Path(args.json) if args.json else None
    if args.update and json_path is None:
        raise ValueError("--update needs --json (the results file whose other rows are kept)")
    kept = []  # rows of models not run now, from the file being updated
    if args.update and json_path.is_file():
        try:
            run_now = {planner.upper() for planner in planners} | {"none"}  # baselines plan with nothing
            kept = [row for row in json.loads(json_path.read_text())
                    if row["model"] not in models or row["planner"] not in run_now or row.get("task") != protocol.task]
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"{json_path}: not a planning results file to update ({error})") from error

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    def save(rows: list[dict]) -> None:
        for row in rows:  # timings mean little without the machine and its load
            row.setdefault("device", device)
            row.setdefault("torch_threads", torch.get_num_threads())
            row.setdefault("cpu_count", os.cpu_count())
            row.setdefault("load_average_before", load_before)
            row.setdefault("load_average_after", os.getloadavg() if hasattr(os, "getloadavg") else None)
        if json_path is not None:
            every = add_oracle_gaps(sorted(rows + kept, key=lambda row: MODELS.index(row["model"])))  # stable sort
            atomic_write_text(json_path, json.dumps(every, indent=2) + "\n")
            atomic_write_text(json_path.with_suffix(".md"), markdown_table(every) + "\n")

    rows = run_planning_benchmark(
        models, planners, flow=args.flow or "flow-default", masked=args.masked or "masked-default",
        oracle_tokenizer=args.oracle_tokenizer, protocol=protocol, planner_overrides=overrides, quick=args.quick,
        sampling_steps={"flow": args.flow_steps, "masked": args.masked_steps}, required=sorted(required),
        device=device, precision=args.precision, log=lambda message: tqdm.write(f"hwm bench planning: {message}"),
        on_row=save,
    )
    save(rows)
    print(markdown_table(add_oracle_gaps(rows)))
    if json_path is not None:
        print(f"wrote {json_path} and {json_path.with_suffix('.md')}")
    return 0
