"""The experiment's Markdown table: the task in one paragraph, one row per trained or baseline policy."""
from __future__ import annotations

from hwm_env.sim.goals import success_cells
from models import tables
from train.policy.settings import FAMILY_LABELS


def markdown_table(results: dict) -> str:
    """The task line and one row per trained or baseline policy."""
    protocol, experiment = results["protocol"], results["experiment"]
    task = experiment["task"]
    joints = "all action entries" if task["control"] == "all" else "the goal joints (hips, arms, neck)"
    if task["action_mode"] == "offset":
        acting = f"set the targets of {joints} within ±{task['max_offset']} of the start command"
    else:
        acting = f"move the targets of {joints} by at most {task['max_delta']} per frame"
    intro = (
        f"Goal reaching in HWM-Sim-v0 on the planning benchmark's goal set: {protocol['episodes']} episodes "
        f"(seed {protocol['seed']}), {protocol['steps']} frames each; success = final view error (mean |angle - goal| "
        f"over hip yaw/roll/pitch and neck pitch) < {protocol['success_threshold']} rad; pose error = the same over "
        f"all goal joints. Policies {acting}; "
        f"reward = minus the latent MSE to the goal image ({FAMILY_LABELS[results['world_model']['family']]}'s "
        f"tokenizer). Training episodes: {task['horizon']} frames, goals {task['goal_min_steps']}-"
        f"{task['goal_max_steps']} frames ahead; imagination starts from `{results['data']['path']}` "
        f"({results['data']['train_frames']:,} frames)."
    )
    columns = ["policy", "trained in", "success", "final view error (rad)", "final pose error (rad)", "real frames",
               "imagined frames", "train time (s)"]
    cells = [
        [row["policy"], row["trained_in"], *success_cells(row), f"{row['final_pose_error_mean']:.3f}",
         f"{row['real_frames']:,}", f"{row['imagined_frames']:,}" if row.get("imagined_frames") else "-",
         f"{row['train_seconds']:.0f}"]
        for row in results["rows"]
    ]
    return tables.markdown_table(columns, cells, align="llrrrrrr", intro=intro)
