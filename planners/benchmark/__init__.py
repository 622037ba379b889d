"""The goal-reaching planning benchmark (DESIGN.md section 10): plan in a model, act in HWM-Sim-v0.

Protocol (fixed and seeded; every row sees the same episodes and the same planner seeds):
1. Episode e: reset HWM-Sim-v0 with a seed drawn from `seed`, hold the start pose for
   `settle_steps` frames (the objects settle; these frames and the hold actions into them
   are the world model's context), then `GoalSampler` draws a reachable goal pose from
   there. The goal is shown as the head-camera image at that pose, encoded once by the
   planning model's tokenizer.
2. A row drives the simulator from the start for `steps` frames with MPC. The planner
   chooses joint targets for the joints a goal moves (hip yaw/roll/pitch, both arms, neck);
   legs, grippers and base keep their start commands. Each planned action is held for
   `action_repeat` frames (DINO-WM's frameskip); the planner looks `horizon` held actions
   ahead, executes `replan_every` of them, then replans from the new observation. Its model
   is a world model (latent rollouts, no decoding) or the simulator itself (the oracle:
   same planner, same latent cost, on rendered frames encoded by a world model's tokenizer).
   Baselines: random actions (uniform in the planner's action box, held likewise) and
   holding the start pose.
3. Score: the final view error, the mean |angle - goal angle| (rad) over the four goal
   joints that aim the head camera (hip yaw, roll, pitch and neck pitch); success when
   below `success_threshold` (default 0.03 rad, about 1.3 pixels of camera rotation at
   64 px). The predicate, and why these joints, is `hwm_env.sim.goals` (view_error,
   SUCCESS_THRESHOLD); the error over all 18 goal joints (`joint_error`) is reported
   beside it as `final_pose_error`, not used for success.

Modules, in the order a run uses them: `protocol` (rows, planner defaults, `Protocol`),
`episodes` (seeded start/goal pairs, the action box, scoring), `held_actions` (frameskip
for the env, the planner's dynamics and the model context), `planning_models` (a world
model or the simulator as the planner's model), `runner` (`run_planning_benchmark`),
`report` (JSON rows and the Markdown table). The simulator lives in `hwm_env`, which
depends on `planners`; it is imported inside functions so that `planners` stays
importable without MuJoCo (the success predicate in `hwm_env.sim.goals` loads none).
"""
from __future__ import annotations

from planners.benchmark.episodes import Episode, EpisodeResult, action_box, make_episodes, score
from planners.benchmark.held_actions import HeldActionContext, HeldActionDynamics, action_repeat_env, strided_context
from planners.benchmark.planning_models import OraclePlanning, WorldModelPlanning, goal_cost
from planners.benchmark.protocol import (
    COSTS, MODEL_LABELS, MODELS, PLANNER_DEFAULTS, PLANNERS, QUICK_PROTOCOL, WORLD_MODELS, Protocol, make_planner,
    parse_overrides, planner_settings,
)
from planners.benchmark.report import format_settings, markdown_table, summarize
from planners.benchmark.runner import run_planning_benchmark

__all__ = [
    "COSTS", "MODEL_LABELS", "MODELS", "PLANNER_DEFAULTS", "PLANNERS", "QUICK_PROTOCOL", "WORLD_MODELS",
    "Episode", "EpisodeResult", "HeldActionContext", "HeldActionDynamics", "OraclePlanning", "Protocol",
    "WorldModelPlanning", "action_box", "action_repeat_env", "format_settings", "goal_cost", "make_episodes",
    "make_planner", "markdown_table", "parse_overrides", "planner_settings", "run_planning_benchmark", "score",
    "strided_context", "summarize",
]
