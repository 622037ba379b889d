"""Tasks defined on the simulator's state (issue #30): aim, look-at, reach, push.

Each task draws start states from HWM-Sim-v0, scores a `Readout` (the 25-d state and the
object centres in the head-camera frame, from the simulator or from a state probe on a
world model's frames) and has a privileged scripted policy that solves it. Use one with
`HWMSimEnv(task="reach")` / `gym.make("HWM-Sim-v0", task="reach")`, or directly:

    task = make_task("push")
    episode = task.sample_episode(env, seed=0)
    success = task.is_success(Readout.from_sim(env), episode)

`TASKS` lists them in order of difficulty.
"""
from __future__ import annotations

from hwm_env.tasks.aim import AimTask
from hwm_env.tasks.base import Readout, Task, TaskEpisode
from hwm_env.tasks.look_at import LookAtTask
from hwm_env.tasks.push import PushTask
from hwm_env.tasks.reach import ReachTask

TASKS: dict[str, type[Task]] = {
    AimTask.name: AimTask,
    LookAtTask.name: LookAtTask,
    ReachTask.name: ReachTask,
    PushTask.name: PushTask,
}

__all__ = ["TASKS", "make_task", "Readout", "Task", "TaskEpisode", "AimTask", "LookAtTask", "ReachTask", "PushTask"]


def unknown_task_error(name) -> ValueError:
    return ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")


def make_task(name: str, **kwargs) -> Task:
    """The task called `name` (a key of TASKS), built with `kwargs`."""
    if name not in TASKS:
        raise unknown_task_error(name)
    return TASKS[name](**kwargs)
