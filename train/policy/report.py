"""The experiment's Markdown table: the task in one paragraph, one row per trained or baseline policy."""
from __future__ import annotations

from models import tables
from models.intervals import format_rate
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
        f"Task `{protocol['task']}` in HWM-Sim-v0: {protocol['episodes']} episodes of the policy-scoring seed "
        f"domain (set {protocol['seed_set']}), {protocol['steps']} frames each; success = the task's predicate on "
        f"the simulator's state (aim: final mean |angle - goal| over hip yaw/roll/pitch and neck pitch < 0.03 rad); "
        f"brackets: 95% Wilson intervals. Policies {acting}; "
        f"reward = minus the latent MSE to the goal image ({FAMILY_LABELS[results['world_model']['family']]}'s "
        f"tokenizer). Training episodes: {task['horizon']} frames, goals {task['goal_min_steps']}-"
        f"{task['goal_max_steps']} frames ahead; imagination starts from `{results['data']['path']}` "
        f"({results['data']['train_frames']:,} frames)."
    )
    columns = ["policy", "trained in", "success", "final task error", "real frames", "imagined frames",
               "train time (s)"]
    cells = [
        [row["policy"], row["trained_in"], format_rate(row["successes"], row["episodes"]),
         f"{row['final_error_mean']:.3f} ± {row['final_error_std']:.3f}",
         f"{row['real_frames']:,}", f"{row['imagined_frames']:,}" if row.get("imagined_frames") else "-",
         f"{row['train_seconds']:.0f}"]
        for row in results["rows"]
    ]
    return tables.markdown_table(columns, cells, align="llrrrrr", intro=intro)
