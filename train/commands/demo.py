"""`hwm demo`: one seeded episode in the world model and in the simulator, side by side.

Both start from the same context (the simulator is reset and driven P steps by its
exploration policy; those frames and actions become the world model's context), then
receive the same scripted actions. The GIF shows model | simulator; PSNR per step says
how far the imagination drifts from the simulator.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

FAMILIES = ("flow", "masked")


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups[""].add_parser(
        "demo",
        help="play one episode in a world model and in HWM-Sim-v0 side by side (GIF + PSNR)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", choices=FAMILIES, default="flow", help="model family (default: flow)")
    parser.add_argument("--checkpoint", default=None,
                        help="world-model checkpoint folder (default: the shipped <model>-default)")
    parser.add_argument("--steps", type=int, default=64, help="steps to play after the context (default: 64, 4.3 s at 15 Hz)")
    parser.add_argument("--out", default="hwm_demo.gif", help="output GIF path (default: hwm_demo.gif)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start and of the scripted actions")
    parser.add_argument("--scale", type=int, default=4, help="upscaling of the frames in the GIF (default: 4)")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available, else cpu)")
    parser.set_defaults(func=run_demo)


def side_by_side(model_frame: np.ndarray, sim_frame: np.ndarray, scale: int, caption: str):
    """One GIF frame: model | simulator, nearest-neighbour upscaled, with a caption bar."""
    from PIL import Image, ImageDraw

    height, width = model_frame.shape[:2]
    gap, bar = 4, 14
    canvas = Image.new("RGB", (2 * width * scale + gap, height * scale + bar), (255, 255, 255))
    for column, frame in enumerate((model_frame, sim_frame)):
        panel = Image.fromarray(frame).resize((width * scale, height * scale), Image.NEAREST)
        canvas.paste(panel, (column * (width * scale + gap), bar))
    draw = ImageDraw.Draw(canvas)
    draw.text((3, 1), f"world model  {caption}", fill=(0, 0, 0))
    draw.text((width * scale + gap + 3, 1), "simulator (HWM-Sim-v0)", fill=(0, 0, 0))
    return canvas


def write_gif(images, path: Path, fps: float) -> None:
    """Write atomically: a crash never leaves a half-written GIF at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(round(1000 / fps)), loop=0)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run_demo(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hwm_env.context import drive_sim, exploration_policy, sim_step
    from hwm_env.sim.env import HWMSimEnv
    from hwm_env.world_model_env import HWMEnv
    from train.metrics import psnr

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.scale < 1:
        raise ValueError(f"--scale must be >= 1, got {args.scale}")
    out = Path(args.out)
    if out.suffix.lower() != ".gif":
        raise ValueError(f"--out must end in .gif, got '{out}'")
    checkpoint = args.checkpoint or f"{args.model}-default"

    env = HWMEnv(checkpoint=checkpoint, obs_mode="rgb", device=args.device)
    height, width = env.runner.image_size
    if height != width:
        raise ValueError(f"{checkpoint}: the simulator renders square frames, the model expects {height}x{width}")
    sim = HWMSimEnv(resolution=height)
    try:
        sim.reset(seed=args.seed)
        act = exploration_policy(sim, args.seed)  # the scripted actions, fixed by the seed
        stride = env.runner.frame_stride  # simulator steps per model step
        context = drive_sim(sim, act, env.num_past, stride)  # the shared start
        model_frame, _ = env.reset(seed=args.seed, options={"frames": context.frames, "actions": context.actions})
        sim_frame = context.frames[-1]
        images = [side_by_side(model_frame, sim_frame, args.scale, "context")]
        scores, model_seconds, sim_seconds = [], 0.0, 0.0
        print(f"hwm demo: {checkpoint} ({env.runner.family}) vs HWM-Sim-v0, seed {args.seed}, {args.steps} steps")
        for step in tqdm(range(1, args.steps + 1), desc="demo", unit="step"):
            start = time.perf_counter()
            sim_frame, action = sim_step(sim, act, stride)  # action: the mean of the stride's actions
            sim_seconds += time.perf_counter() - start
            start = time.perf_counter()
            model_frame, *_ = env.step(action)
            model_seconds += time.perf_counter() - start
            scores.append(float(psnr(model_frame[None], sim_frame[None])[0]))  # the evaluation protocol's PSNR
            tqdm.write(f"step {step:4d}  PSNR {scores[-1]:6.2f} dB")
            images.append(side_by_side(model_frame, sim_frame, args.scale, f"step {step}"))
        write_gif(images, out, env.metadata["render_fps"])
    finally:
        env.close()
        sim.close()
    print(
        f"mean PSNR {np.mean(scores):.2f} dB (first {scores[0]:.2f}, last {scores[-1]:.2f}); "
        f"world model {args.steps / model_seconds:.1f} steps/s, simulator {args.steps * stride / sim_seconds:.1f} steps/s"
    )
    print(f"wrote {out}")
    return 0
