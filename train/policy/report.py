"""The experiment's Markdown table: the task in one paragraph, one row per trained or baseline policy."""
from __future__ import annotations

from models import tables
from models.intervals import format_rate
from train.policy.settings import FAMILY_LABELS


def markdown_table(results: dict) -> str:
    """The task line and one row per trained or baseline policy."""
    scoring, experiment = results["scoring"], results["experiment"]
    control = experiment["control"]
    if control["action_mode"] == "offset":
        acting = f"set the task's joints within ±{control['max_offset']} of the start command"
    else:
        acting = f"move the task's joints by at most {control['max_delta']} per step"
    intro = (
        f"Task `{experiment['task']}`: {scoring['episodes']} episodes of the policy-scoring seed domain (set "
        f"{scoring['seed_set']}), {scoring['steps']} frames each in HWM-Sim-v0; success = the task's predicate on "
        f"the simulator's state; brackets: 95% Wilson intervals. Policies see the state probe's reading of the "
        f"frame, the task and their commands, and {acting}. Training episodes: {experiment['horizon']} steps from "
        f"the task's start distribution (policy-training seed domain), value bootstrapped at truncation; "
        f"imagination: {FAMILY_LABELS[results['world_model']['family']]} from {results['pool']['episodes']} real "
        f"task starts, reward = the task reward of the probe's reading of each predicted frame. Real frames of the "
        f"imagination row: the world model's training data ({results['data']['train_frames']:,}) + the starts "
        f"({results['pool']['real_frames']:,})."
    )
    columns = ["policy", "trained in", "success", "final task error", "real frames", "imagined frames",
               "train time (s)"]
    cells = [
        [row["policy"], row["trained_in"], format_rate(row["successes"], row["episodes"]),
         f"{row['final_error_mean']:.3f} ± {row['final_error_std']:.3f}",
         f"{row['real_frames']:,}" if row["real_frames"] else "-",
         f"{row['imagined_frames']:,}" if row.get("imagined_frames") else "-",
         f"{row['train_seconds']:.0f}" if row["train_seconds"] else "-"]
        for row in results["rows"]
    ]
    return tables.markdown_table(columns, cells, align="llrrrrr", intro=intro)
