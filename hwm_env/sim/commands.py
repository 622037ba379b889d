"""`hwm data sim`: generate an `hwm-v1` data set from HWM-Sim-v0 and its exploration policy.

Each episode is a reset with its own seed followed by `steps` frames; frame t is stored
with the action commanded at t (which drives t -> t+1) and the state measured at t.
`object_positions.bin` adds, per frame, the 4 objects' centres in the head camera's frame
(`HWMSimEnv.object_positions`: x right, y up, z forward, metres; names in the metadata's
`object_position_names`), what the frame shows of the objects, for the state probe.
Episodes are split into `train/` and `val/` (the last ones go to val), and the whole
data set folder appears atomically: a crash leaves nothing behind.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hwm_env import seeds
from hwm_env.sim import layout


def register(groups) -> None:
    parser = groups["data"].add_parser(
        "sim",
        help="generate a data set from the MuJoCo reference simulator (HWM-Sim-v0)",
        description="Run the scripted exploration policy in HWM-Sim-v0 and write an hwm-v1 data set "
        "(DIR/train and DIR/val, split by episode) of head-camera frames, commanded actions and measured states.",
    )
    parser.add_argument("--episodes", type=int, default=100, help="number of episodes (default 100)")
    parser.add_argument("--steps", type=int, default=300, help="frames per episode (default 300 = 20 s at 15 Hz)")
    parser.add_argument("--resolution", type=int, default=64, help="square frame size in pixels (default 64)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (gets train/ and val/)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every episode's reset and policy")
    parser.add_argument("--domain", choices=("training", "evaluation"), default="training",
                        help="seed domain (hwm_env/seeds.py): 'training' for training data (default), 'evaluation' "
                        "for held-out selection and test sets, so no held-out episode can repeat a training one")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="fraction of episodes in val/ (default 0.1)")
    parser.add_argument("--control-hz", type=float, default=15.0, help="frames (actions) per second (default 15)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out folder")
    parser.set_defaults(func=run_sim)


def run_sim(args: argparse.Namespace) -> int:
    from hwm_env.sim.rendering import RenderingUnavailableError

    try:
        summary = generate_dataset(
            args.out,
            episodes=args.episodes,
            steps=args.steps,
            resolution=args.resolution,
            seed=args.seed,
            domain=args.domain,
            val_fraction=args.val_fraction,
            control_hz=args.control_hz,
            overwrite=args.overwrite,
        )
    except RenderingUnavailableError as error:
        print(f"hwm: error: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {summary['train_frames']} train + {summary['val_frames']} val frames "
        f"({summary['train_episodes']} + {summary['val_episodes']} episodes, {args.resolution}x{args.resolution}) "
        f"to {args.out} in {summary['seconds']:.1f} s ({summary['frames_per_second']:.0f} frames/s)"
    )
    return 0


def split_episodes(episodes: int, val_fraction: float) -> int:
    """Number of validation episodes: round(episodes * val_fraction), at least 1 when val_fraction > 0."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0:
        return 0
    num_val = max(1, round(episodes * val_fraction))
    if episodes - num_val < 1:
        raise ValueError(
            f"--episodes {episodes} with --val-fraction {val_fraction} leaves no training episode; "
            "use at least 2 episodes"
        )
    return num_val


def generate_dataset(
    out: str | Path,
    episodes: int,
    steps: int,
    resolution: int = 64,
    seed: int = 0,
    domain: str = "training",
    val_fraction: float = 0.1,
    control_hz: float = 15.0,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write `out/train` (+ `out/val`) hwm-v1 splits; return counts and speed.

    Episode i resets with the first word of the i-th episode seed of `domain`'s stream `seed`
    (`hwm_env.seeds`; in the `training` domain the i-th child of `SeedSequence(seed)`) and seeds its
    `ExplorationPolicy` with the second.
    """
    import os
    import time

    import numpy as np
    from tqdm import tqdm

    from hwm_env.sim.env import OBJECT_POSITION_NAMES, HWMSimEnv
    from hwm_env.sim.exploration import ExplorationPolicy
    from models.checkpoint import atomic_directory_write
    from models.data.hwm_format import HWMWriter

    if episodes < 1 or steps < 1:
        raise ValueError(f"--episodes and --steps must be >= 1, got {episodes} and {steps}")
    num_val = split_episodes(episodes, val_fraction)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ValueError(f"{out}: already exists and is not empty; pass --overwrite to replace it")

    env = HWMSimEnv(resolution=resolution, control_hz=control_hz)
    episode_seeds = seeds.episode_seeds(domain, seed, episodes, words=2)
    frames = np.empty((steps, resolution, resolution, 3), np.uint8)
    actions = np.empty((steps, layout.ACTION_DIM), np.float32)
    states = np.empty((steps, layout.STATE_DIM), np.float32)
    object_positions = np.empty((steps, len(OBJECT_POSITION_NAMES)), np.float32)
    splits = {"train": range(episodes - num_val), "val": range(episodes - num_val, episodes)}
    counts = {}
    started = time.perf_counter()
    try:
        with atomic_directory_write(out) as tmp, tqdm(
            total=episodes * steps, unit="frame", desc="hwm data sim", disable=not progress
        ) as bar:
            os.chmod(tmp, 0o755)  # the temp folder is private; a data set is meant to be shared
            for split, episode_ids in splits.items():
                if len(episode_ids) == 0:
                    continue
                writer = HWMWriter(
                    tmp / split,
                    height=resolution,
                    width=resolution,
                    action_dim=layout.ACTION_DIM,
                    fps=control_hz,
                    action_names=layout.ACTION_NAMES,
                    state_dim=layout.STATE_DIM,
                    source="HWM-Sim-v0",
                    binary_action_dims=layout.BINARY_DIMS,
                    extra_metadata={
                        "state_names": list(layout.STATE_NAMES),
                        "generator": {"command": "hwm data sim", "seed": seed, "domain": domain,
                                      "episode_range": [episode_ids.start, episode_ids.stop],
                                      "steps": steps, "control_hz": control_hz, "policy": "ExplorationPolicy"},
                    },
                    object_position_names=OBJECT_POSITION_NAMES,
                )
                with writer:
                    for episode in episode_ids:
                        reset_seed, policy_seed = episode_seeds[episode]
                        observation, info = env.reset(seed=int(reset_seed))
                        policy = ExplorationPolicy(env, seed=int(policy_seed))
                        for t in range(steps):
                            action = policy.act()
                            frames[t], actions[t], states[t] = observation, action, info["state"]
                            object_positions[t] = info["object_positions"]
                            observation, _, _, _, info = env.step(action)
                        writer.add_episode(frames, actions, states, object_positions=object_positions)
                        bar.update(steps)
                counts[split] = writer.num_frames
    finally:
        env.close()
    seconds = time.perf_counter() - started
    return {
        "train_frames": counts.get("train", 0),
        "val_frames": counts.get("val", 0),
        "train_episodes": episodes - num_val,
        "val_episodes": num_val,
        "seconds": seconds,
        "frames_per_second": episodes * steps / seconds,
    }
