"""The benchmark's output: one JSON row per (model, planner), the oracle gaps, and the Markdown table.

Success is reported with its 95% Wilson interval; the oracle gap (the oracle's success rate
minus the row's, same planner, budget, cost and episodes) with its 95% Agresti-Caffo
interval, so a gap whose interval covers 0 reads as "not distinguishable at this count".
"""
from __future__ import annotations

import dataclasses

import numpy as np

from models import tables
from models.intervals import agresti_caffo_interval, format_difference, format_rate, wilson_interval
from planners.benchmark.episodes import Episode, EpisodeResult
from planners.benchmark.protocol import MODEL_LABELS, Protocol

SHORT_NAMES = {"horizon": "H", "num_samples": "N", "num_elites": "K", "iterations": "I", "init_std": "std",
               "min_std": "min_std", "max_std": "max_std", "temperature": "temp", "filter_scale": "filter"}


def summarize(model: str, planner: str | None, results: list[EpisodeResult], episodes: list[Episode],
              protocol: Protocol, settings: dict | None, details: dict) -> dict:
    """One JSON row."""
    from hwm_env.tasks import make_task

    task = make_task(protocol.task)
    errors = np.asarray([result.error for result in results], dtype=np.float64)
    successes = int(sum(result.success for result in results))
    seconds = [value for result in results for value in result.plan_seconds]
    cpu_seconds = [value for result in results for value in result.plan_cpu_seconds]
    return {
        "task": protocol.task,
        "model": model,
        "planner": planner or "none",
        "successes": successes,
        "episodes": len(results),
        "success_rate": successes / len(results),
        "success_interval": list(wilson_interval(successes, len(results))),
        "final_error_mean": float(errors.mean()),
        "final_error_std": float(errors.std()),
        "start_error_mean": float(np.mean([episode.start_error for episode in episodes])),
        "success_threshold": task.success_threshold,
        "seconds_per_plan": float(np.mean(seconds)) if seconds else None,
        "seconds_per_plan_max": float(np.max(seconds)) if seconds else None,
        "cpu_seconds_per_plan": float(np.mean(cpu_seconds)) if cpu_seconds else None,
        "plans": len(seconds),
        "hyperparameters": dict(settings or {}),
        **details,
        "protocol": dataclasses.asdict(protocol),
        "final_errors": [float(error) for error in errors],
        "episode_successes": [bool(result.success) for result in results],
    }


def oracle_rows(rows: list[dict]) -> dict:
    """{(task, planner): the oracle's row} among `rows`: what each world-model row's gap is taken against."""
    return {(row["task"], row["planner"]): row for row in rows if row["model"] == "oracle"}


def add_oracle_gaps(rows: list[dict]) -> list[dict]:
    """Set `oracle_gap` (oracle rate - row rate) and its interval on every world-model row with an oracle row
    of the same task and planner; rows without one get None."""
    oracles = oracle_rows(rows)
    for row in rows:
        oracle = oracles.get((row["task"], row["planner"]))
        if row["model"] in ("oracle", "random", "hold", "scripted") or oracle is None:
            row["oracle_gap"], row["oracle_gap_interval"] = None, None
            continue
        row["oracle_gap"] = oracle["success_rate"] - row["success_rate"]
        row["oracle_gap_interval"] = list(agresti_caffo_interval(oracle["successes"], oracle["episodes"],
                                                                 row["successes"], row["episodes"]))
        row["fraction_of_oracle"] = row["success_rate"] / oracle["success_rate"] if oracle["successes"] else None
    return rows


def format_settings(row: dict) -> str:
    """"H1 N16 K2 I2 std 0.1 min_std 0.02, 2 sampling steps" from a row's hyper-parameters."""
    parts = []
    for key, value in row.get("hyperparameters", {}).items():
        short = SHORT_NAMES.get(key, key)
        parts.append(f"{short}{value}" if len(short) == 1 else f"{short} {value:g}")
    text = " ".join(parts) if parts else "-"
    if row.get("sampling_steps"):
        text += f", {row['sampling_steps']} sampling steps"
    if row.get("precision") in ("fp32", "bf16"):
        text += f", {row['precision']}"
    if (row.get("frame_stride") or 1) > 1:
        text += f", frame stride {row['frame_stride']}"
    return text


def cost_description(protocol: dict) -> str:
    cost = protocol.get("cost", "goal")
    if cost == "image":
        return f"MSE of decoded frames to the goal image, both blurred (sigma {protocol['cost_blur']:g} px)"
    if cost == "probe":
        return f"minus the task's reward read from predicted frames by the state probe {protocol['probe']}"
    return "latent MSE to the goal image"


def _gap_cell(row: dict, oracles: dict) -> str:
    oracle = oracles.get((row["task"], row["planner"]))
    if row["model"] not in ("flow", "masked") or oracle is None:
        return "-"
    return format_difference(oracle["successes"], oracle["episodes"], row["successes"], row["episodes"])


def markdown_table(rows: list[dict]) -> str:
    """A line stating the protocol, then one table row per JSON row."""
    if not rows:
        return "(no rows: every model was skipped)"
    protocol = rows[0]["protocol"]
    seed_set = protocol["seed_set"]
    header = (
        f"Task `{protocol['task']}`: {rows[0]['episodes']} episodes of the planning seed domain's `{seed_set}` set, "
        f"{protocol['steps']} frames each; actions held {protocol['action_repeat']} frames, replanning every "
        f"{protocol['replan_every']} held action(s); cost: {cost_description(protocol)} ({protocol['cost_reduce']} "
        f"step); success: final task error < {rows[0]['success_threshold']:g}. Brackets: 95% intervals (Wilson; "
        "oracle gap: Agresti-Caffo)."
    )
    oracles = oracle_rows(rows)
    columns = ["model", "planner", "success", "oracle gap", "final error", "start error", "s / plan", "settings"]
    cells = [
        [MODEL_LABELS.get(row["model"], row["model"]), row["planner"] if row["planner"] != "none" else "-",
         format_rate(row["successes"], row["episodes"]), _gap_cell(row, oracles),
         f"{row['final_error_mean']:.3f} ± {row['final_error_std']:.3f}", f"{row['start_error_mean']:.3f}",
         "-" if row["seconds_per_plan"] is None else f"{row['seconds_per_plan']:.2f}", format_settings(row)]
        for row in rows
    ]
    return tables.markdown_table(columns, cells, align="llrrrrrl", intro=header)


SUMMARY_MODELS = ("flow", "masked", "oracle", "random", "hold", "scripted")
UNITS = {"reach": "m", "push": "m"}  # the other tasks' errors are angles (rad)


def summary_table(rows: list[dict]) -> str:
    """The README's table across tasks: one line per (task, model) with MPPI's and CEM's success
    and oracle gap side by side, MPPI's final error and seconds per plan (the per-task tables of
    `markdown_table` hold every setting). Tasks in the order their rows come."""
    if not rows:
        raise ValueError("no planning rows to summarise")
    by_key = {(row["task"], row["model"], row["planner"]): row for row in rows}
    oracles = oracle_rows(rows)
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    columns = ["task (start error)", "model", "MPPI success", "MPPI oracle gap", "CEM success", "CEM oracle gap",
               "MPPI final error", "s / plan"]
    cells = []
    for task in tasks:
        named = False  # the task's name and start error go on its first line only
        for model in SUMMARY_MODELS:
            if model in ("random", "hold", "scripted"):  # baselines plan nothing: one row, shown as MPPI's
                mppi, cem = by_key.get((task, model, "none")), None
            else:
                mppi, cem = by_key.get((task, model, "MPPI")), by_key.get((task, model, "CEM"))
            if mppi is None and cem is None:
                continue
            label = "" if named else f"`{task}` ({(mppi or cem)['start_error_mean']:.3f} {UNITS.get(task, 'rad')})"
            named = True
            cells.append([
                label, MODEL_LABELS.get(model, model),
                "-" if mppi is None else format_rate(mppi["successes"], mppi["episodes"]),
                "-" if mppi is None else _gap_cell(mppi, oracles),
                "-" if cem is None else format_rate(cem["successes"], cem["episodes"]),
                "-" if cem is None else _gap_cell(cem, oracles),
                "-" if mppi is None else f"{mppi['final_error_mean']:.3f}",
                "-" if mppi is None or mppi["seconds_per_plan"] is None else f"{mppi['seconds_per_plan']:.2f}",
            ])
    intro = ("Success with 95% Wilson intervals; oracle gap = the simulator-planner's success minus the "
             "world model's, same planner, budget, cost and episodes (Agresti-Caffo interval).")
    return tables.markdown_table(columns, cells, align="llrrrrrr", intro=intro)
