"""Policies for a task, trained by PPO in a world model's imagination or in HWM-Sim-v0, scored in HWM-Sim-v0.

The problem is one of the tasks (`hwm_env/tasks/`: aim, look-at, reach, push), posed alike
in both worlds (`worlds`): the same start distribution (policy-training seed domain), the
same observation (`observation`: the state probe's reading of the frame, the task, the
commands), the same actions (`commander`: offsets of the task's controlled joints around the
start pose). Imagination follows DIAMOND, IRIS and Dreamer: short imagined episodes
(`horizon`, 16 steps) from real starts, the value bootstrapped where they are cut, the reward
read off predicted frames by the probe. Scored on the policy-scoring seed domain's episodes
(`scoring`), where the truth is the simulator's state.

Rows (`experiment`): PPO in imagination; PPO in the simulator with as many real frames as the
imagination row had (the world model's training data plus the real starts); PPO in the
simulator with an unlimited budget (upper bound); random; hold; the task's privileged scripted
controller. `hwm bench policies` (`ranking`) ranks policies by their success in imagination
and in the simulator.

Policy checkpoints are stable-baselines3's own `model.save` zips (state dicts plus its
JSON/cloudpickle metadata): SB3's format, accepted for policies; world models, tokenizers and
probes stay safetensors.
"""
from __future__ import annotations

from train.policy.commander import Commander
from train.policy.experiment import RESULTS_JSON, RESULTS_MARKDOWN, PolicySetup, run_policy_experiment, write_results
from train.policy.observation import TaskObservation
from train.policy.policies import aim_feed_forward_policy, hold_policy, noisy_policy, ppo_policy, random_policy
from train.policy.ppo import TrainingProgress, WandbOutput, make_ppo, save_policy, train_ppo
from train.policy.report import markdown_table
from train.policy.scoring import score_in_imagination, score_in_sim, summarize
from train.policy.settings import ControlSettings, PolicyExperiment, PPOSettings, quick
from train.policy.worlds import EpisodeSeeds, ImaginedTask, SimTask, draw_task_starts

__all__ = [
    "RESULTS_JSON", "RESULTS_MARKDOWN", "Commander", "ControlSettings", "EpisodeSeeds", "ImaginedTask",
    "PPOSettings", "PolicyExperiment", "PolicySetup", "SimTask", "TaskObservation", "TrainingProgress", "WandbOutput",
    "aim_feed_forward_policy", "draw_task_starts", "hold_policy", "make_ppo", "markdown_table", "noisy_policy",
    "ppo_policy", "quick", "random_policy", "run_policy_experiment", "save_policy", "score_in_imagination",
    "score_in_sim", "summarize", "train_ppo", "write_results",
]
