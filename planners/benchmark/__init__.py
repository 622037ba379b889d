"""The planning benchmark (one table per task): plan in a model, act in HWM-Sim-v0, score on its truth.

Protocol (fixed and seeded; every row of a task sees the same episodes and planner seeds):
1. Episode e of task T (`hwm_env.tasks`: aim, look-at, reach, push) starts from T's seeded
   start distribution, its seed drawn from the `planning` seed domain (`hwm_env/seeds.py`;
   the `selection` set tunes settings, the `test` set is reported). The settle frames before
   the start are the world models' context. The goal is shown as an image: the task's own
   (aim) or the last frame of T's scripted controller run from the start.
2. A row drives the simulator from the start for `steps` frames with MPC. The planner
   chooses the task's controlled action entries (`Task.action_box`); the rest keep their
   start commands. Each planned action is held for `action_repeat` frames (DINO-WM's
   frameskip); the planner looks `horizon` held actions ahead, executes `replan_every`, then
   replans from the new observation. Its model is a world model (latent rollouts) or the
   simulator itself (the oracle: same planner, budget, cost and episodes, on rendered frames).
   The cost is the latent distance to the goal image (`goal`), a blurred pixel distance
   (`image`) or minus the task's reward read off predicted frames by the state probe (`probe`).
   Baselines: random actions (uniform in the action box, held likewise), holding the start
   pose, and the task's scripted controller (privileged: it reads the simulator's state).
3. Score: the task's error and success predicate on the simulator's state at the end; the
   success rate with a 95% Wilson interval, and the oracle gap with an Agresti-Caffo interval.

Modules, in the order a run uses them: `protocol` (rows, planner defaults, `Protocol`),
`episodes` (task episodes and goal images, scoring), `held_actions` (frameskip for the env,
the planner's dynamics and the model context), `planning_models` (a world model or the
simulator as the planner's model), `runner` (`run_planning_benchmark`), `report` (JSON rows,
oracle gaps and the Markdown table). The simulator lives in `hwm_env`; it is imported inside
functions so that `planners` stays importable without MuJoCo.
"""
from __future__ import annotations

from planners.benchmark.episodes import Episode, EpisodeResult, make_episodes, score, scripted_rollout
from hwm_env.context import strided_context
from planners.benchmark.held_actions import HeldActionContext, HeldActionDynamics, action_repeat_env
from planners.benchmark.planning_models import OraclePlanning, WorldModelPlanning, goal_cost
from planners.benchmark.protocol import (
    COSTS, MODEL_LABELS, MODELS, PLANNER_DEFAULTS, PLANNERS, QUICK_PROTOCOL, WORLD_MODELS, Protocol, make_planner,
    parse_overrides, planner_settings,
)
from planners.benchmark.report import add_oracle_gaps, format_settings, markdown_table, summarize
from planners.benchmark.runner import run_planning_benchmark

__all__ = [
    "COSTS", "MODEL_LABELS", "MODELS", "PLANNER_DEFAULTS", "PLANNERS", "QUICK_PROTOCOL", "WORLD_MODELS",
    "Episode", "EpisodeResult", "HeldActionContext", "HeldActionDynamics", "OraclePlanning", "Protocol",
    "WorldModelPlanning", "action_repeat_env", "add_oracle_gaps", "format_settings", "goal_cost", "make_episodes",
    "make_planner", "markdown_table", "parse_overrides", "planner_settings", "run_planning_benchmark", "score",
    "scripted_rollout", "strided_context", "summarize",
]
