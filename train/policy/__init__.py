"""PPO trained purely inside a world model (DIAMOND/IRIS style), then scored in HWM-Sim-v0.

**Task: reach a goal pose shown as an image.** An episode starts from P context frames;
the policy sees the current frame and the goal image and moves the robot's joints.

**Reward: minus the mean squared distance between the latent of the current frame and the
latent of the goal image**, both from the world model's own tokenizer (FSQ code vectors
for token grids). Why this and not a learned reward model: it needs no extra model (nothing
to train, nothing that can be wrong differently from the world model), it is exactly the
cost the CEM/MPPI planners minimise (`planners.costs.LatentGoalCost`, and `HWMEnv`'s goal
reward), so the policy and the planners optimise the same number, and it is computable
in the simulator too (encode the rendered frame), which is what makes the sim-trained
baselines a like-for-like comparison.

**Actions: target offsets around the episode's start pose.** The policy moves the joints a
benchmark goal moves (hips, arms, neck: the planners' action box); each output u in
[-1, 1] sets `target = start + max_offset * u` for those joints, while legs and grippers
hold their start command and the base stands still. Zero output holds the start pose, so
exploration stays local around it (as the planners' warm start does), and an imperfect
policy's error stays bounded (`action_mode="delta"`, target changes of `max_delta * u` per
step, integrates a biased mean over the episode: measured worse than holding still at
12k simulator frames, where offsets were on par with it). The current and the start
command are part of the observation (the robot knows what it commands).

**Observation (goal-conditioned):**
| policy | SB3 policy | observation |
|---|---|---|
| `mlp` | `MlpPolicy` | `Box((2 D + 2 A,), float32)`: latent features of the current frame, of the goal image (D each), current and start command |
| `cnn` | `MultiInputPolicy` (NatureCNN) | `Dict(image=Box(0, 255, (H, W, 6), uint8), action=Box((2 A,)))`: current frame and goal image stacked on channels, current and start command |
MLP on latents is the default: in HWM-Sim-v0 with the trained built-in tokenizer it
reached a lower training latent distance than the CNN at equal samples (0.033 vs 0.037
after 25k policy steps) at 1.5x the frame rate, and in imagination it skips decoding.

**Where each row trains** (all scored on `aim` task episodes of the policy-scoring seed
domain, `planners.benchmark.make_episodes(..., domain="policy-scoring")`, with the same observation: sim frames encoded by the
world model's tokenizer, the goal image encoded once):
| row | trains in | starts and goals | real frames |
|---|---|---|---|
| `imagination` | `HWMVecEnv` (the world model; one batched call per step) | a random window of the model's training data as context; goal = the frame k steps later in the same episode (the recorded actions got there; goals that also moved legs, grippers or the base are reachable only in part) | the world model's training frames (none during PPO) |
| `sim-budget` | HWM-Sim-v0 | the data's distribution: reset, the exploration policy that made the data drives P frames, goal = the frame it reaches k steps on (simulated ahead, then restored) | every simulator step, capped at the world model's training frames |
| `sim-unlimited` | HWM-Sim-v0 | as above | `upper_bound_steps` (upper bound) |
| `random`, `hold` | - | - | 0 |
Episodes are truncated after `horizon` steps in both worlds.

Policy checkpoints are stable-baselines3's own `model.save` zips (state dicts plus its
JSON/cloudpickle metadata): SB3's format, accepted for policies; world models and
tokenizers stay safetensors.

Modules: `settings` (task, PPO, experiment), `observation` (latent features, the
goal-conditioned observation), `commander` (policy outputs -> commands), `data_goals`
(imagined starts and goals), `worlds` (the imagined and the simulated VecEnv), `ppo`
(construction, training, progress and wandb logging), `scoring` (evaluation in HWM-Sim-v0
and the row it makes), `experiment` (`run_policy_experiment`), `report` (the table).
"""
from __future__ import annotations

from train.policy.commander import Commander
from train.policy.data_goals import DataGoals
from train.policy.experiment import RESULTS_JSON, RESULTS_MARKDOWN, run_policy_experiment, write_results
from train.policy.observation import GoalObservation, LatentFeatures, latent_distance
from train.policy.ppo import TrainingProgress, WandbOutput, make_ppo, save_policy, train_ppo
from train.policy.report import markdown_table
from train.policy.scoring import evaluate_in_sim, hold_actor, ppo_actor, random_actor, summarize
from train.policy.settings import PolicyExperiment, PPOSettings, TaskSettings, quick
from train.policy.worlds import ImaginedGoalReaching, SimGoalReaching, make_imagination_env

__all__ = [
    "RESULTS_JSON", "RESULTS_MARKDOWN", "Commander", "DataGoals", "GoalObservation", "ImaginedGoalReaching",
    "LatentFeatures", "PPOSettings", "PolicyExperiment", "SimGoalReaching", "TaskSettings", "TrainingProgress",
    "WandbOutput", "evaluate_in_sim", "hold_actor", "latent_distance", "make_imagination_env", "make_ppo",
    "markdown_table", "ppo_actor", "quick", "random_actor", "run_policy_experiment", "save_policy", "summarize",
    "train_ppo", "write_results",
]
