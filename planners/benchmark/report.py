"""The benchmark's output: one JSON row per (model, planner) and the Markdown table of the rows."""
from __future__ import annotations

import dataclasses

import numpy as np

from hwm_env.sim.goals import VIEW_JOINT_NAMES, success_cells, success_summary, view_error
from models import tables
from planners.benchmark.episodes import Episode, EpisodeResult
from planners.benchmark.protocol import MODEL_LABELS, Protocol

SHORT_NAMES = {"horizon": "H", "num_samples": "N", "num_elites": "K", "iterations": "I", "init_std": "std",
               "min_std": "min_std", "max_std": "max_std", "temperature": "temp", "filter_scale": "filter"}


def summarize(model: str, planner: str | None, results: list[EpisodeResult], episodes: list[Episode],
              protocol: Protocol, settings: dict | None, details: dict) -> dict:
    """One JSON row."""
    errors = [result.view_error for result in results]
    pose_errors = np.asarray([result.pose_error for result in results], dtype=np.float64)
    seconds = [value for result in results for value in result.plan_seconds]
    cpu_seconds = [value for result in results for value in result.plan_cpu_seconds]
    return {
        "model": model,
        "planner": planner or "none",
        **success_summary(errors, protocol.success_threshold),
        "initial_error_mean": float(np.mean([view_error(e.start_state, e.goal_state) for e in episodes])),
        "final_pose_error_mean": float(pose_errors.mean()),
        "seconds_per_plan": float(np.mean(seconds)) if seconds else None,
        "seconds_per_plan_max": float(np.max(seconds)) if seconds else None,
        "cpu_seconds_per_plan": float(np.mean(cpu_seconds)) if cpu_seconds else None,
        "plans": len(seconds),
        "hyperparameters": dict(settings or {}),
        **details,
        "error_joints": list(VIEW_JOINT_NAMES),
        "protocol": dataclasses.asdict(protocol),
        "final_errors": [float(error) for error in errors],
    }


def format_settings(row: dict) -> str:
    """"H1 N16 K2 I2 std 0.1 min_std 0.02, 2 sampling steps" from a row's hyper-parameters."""
    parts = []
    for key, value in row.get("hyperparameters", {}).items():
        short = SHORT_NAMES.get(key, key)
        parts.append(f"{short}{value}" if len(short) == 1 else f"{short} {value:g}")
    text = " ".join(parts) if parts else "-"
    if row.get("sampling_steps"):
        text += f", {row['sampling_steps']} sampling steps"
    if (row.get("frame_stride") or 1) > 1:
        text += f", frame stride {row['frame_stride']}"
    return text


def cost_description(protocol: dict) -> str:
    if protocol.get("cost", "latent") == "image":
        return f"MSE of decoded frames to the goal image, both blurred (sigma {protocol['cost_blur']:g} px)"
    return "latent MSE to the goal image"


def markdown_table(rows: list[dict]) -> str:
    """A line stating the protocol, then one table row per JSON row."""
    if not rows:
        return "(no rows: every model was skipped)"
    protocol = rows[0]["protocol"]
    header = (
        f"{protocol['episodes']} episodes (seed {protocol['seed']}), {protocol['steps']} frames each; actions held "
        f"{protocol['action_repeat']} frames, replanning every {protocol['replan_every']} held action(s); goals up "
        f"to {protocol['max_goal_offset']} action units per joint; cost: {cost_description(protocol)} "
        f"({protocol['cost_reduce']} step); success: final error over {', '.join(rows[0]['error_joints'])} "
        f"< {protocol['success_threshold']} rad."
    )
    columns = ["model", "planner", "success", "final error (rad)", "start error (rad)", "all 18 goal joints (rad)",
               "s / plan", "settings"]
    cells = [
        [MODEL_LABELS.get(row["model"], row["model"]), row["planner"] if row["planner"] != "none" else "-",
         *success_cells(row), f"{row['initial_error_mean']:.3f}", f"{row['final_pose_error_mean']:.3f}",
         "-" if row["seconds_per_plan"] is None else f"{row['seconds_per_plan']:.2f}", format_settings(row)]
        for row in rows
    ]
    return tables.markdown_table(columns, cells, align="llrrrrrl", intro=header)
