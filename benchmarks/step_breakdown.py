"""Where a single env's `rgb` step goes: the model, the decoder, and the env's Python around them.

    python benchmarks/step_breakdown.py [--families Flow Masked] [--rounds 5] [--repeats 40]
        [--threads 2] [--out benchmarks/results/step_breakdown]

One `HWMEnv(obs_mode="rgb")` per setting, all in one process, stepped round-robin
(`--repeats` steps each per round, after a warm-up where compilation happens) with the
same seeded random actions. Every step is split by timers wrapped around the runner's
calls (the library is not edited; the wrappers are instance attributes, removed after):

| part | what it times |
|---|---|
| network | the world model's network calls (Flow-HWM: MMDiT forward per sampling step; Masked-HWM: context encoding + MaskGIT logits) |
| predict rest | `runner.predict_next` minus the network: input checks, normalisation, noise, generators, sampler arithmetic, thread switch |
| decoder | the tokenizer's decoder network |
| decode rest | `runner.decode` minus the decoder: checks, FSQ codes, uint8 conversion, the copy to numpy |
| env Python | `env.step` minus both calls: action checks, seeds, the window slide, reward, observation and info |

The table gives each part's median over all steps; `total` is the median step, so the
parts add up to about it (their means add up exactly; both are in the JSON). The aten
op count per step comes from `torch.profiler` over a few more steps, split the same way:
the ops Python (or compiled code) calls, and all of them with the ones they decompose
into; at batch 1 each is per-call overhead.
Settings: eager fp32 (shipped) and the best measured setting per family (compiled bf16
for Flow-HWM, compiled fp32 for Masked-HWM: its bf16 lost at batch 1); a single env
compiles the model's network only, its decoder runs eager. Writes OUT.json and OUT.md
with this command and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np

FAMILIES = {"Flow": "flow-default", "Masked": "masked-default"}
SETTINGS = {  # family -> {setting name: (precision, compile)}
    "Flow": {"eager fp32": ("fp32", False), "compiled bf16": ("bf16", True)},
    "Masked": {"eager fp32": ("fp32", False), "compiled fp32": ("fp32", True)},
}
PARTS = ("network", "predict rest", "decoder", "decode rest", "env Python")
PROFILE_LABELS = {"network": "hwm::network", "predict": "hwm::predict", "decoder": "hwm::decoder",
                  "decode": "hwm::decode"}


class StepClock:
    """Timers around one env's runner calls, installed as instance attributes (`remove` takes them off).

    `seconds[name]` accumulates wall seconds in "network", "predict", "decoder", "decode"
    since the last `start_step`; with `label=True` each call is also a `torch.profiler`
    range named in PROFILE_LABELS.
    """

    def __init__(self, env):
        from models.compiled import inference_methods

        self.runner = env.unwrapped.runner
        self.label = False
        self.seconds = dict.fromkeys(PROFILE_LABELS, 0.0)
        targets = [(self.runner, "predict_next", "predict"), (self.runner, "decode", "decode")]
        targets += [(owner, name, "network") for owner, names in inference_methods(self.runner.model) for name in names]
        decoder = getattr(self.runner.tokenizer, "decoder", None)
        if decoder is not None:
            targets.append((decoder, "forward", "decoder"))
        self.installed = []
        for owner, name, part in targets:
            had_own = name in owner.__dict__  # a compiled method is an instance attribute already
            previous = owner.__dict__.get(name)
            setattr(owner, name, self._timed(getattr(owner, name), part))
            self.installed.append((owner, name, had_own, previous))

    def _timed(self, method, part: str):
        import torch

        label = PROFILE_LABELS[part]

        def timed(*args, **kwargs):
            start = time.perf_counter()
            with torch.profiler.record_function(label) if self.label else nullcontext():
                output = method(*args, **kwargs)
            self.seconds[part] += time.perf_counter() - start
            return output

        return timed

    def start_step(self) -> None:
        for part in self.seconds:
            self.seconds[part] = 0.0

    def parts(self, total: float) -> dict[str, float]:
        """One step's seconds per part (PARTS) and its total; the parts sum to the total."""
        s = self.seconds
        return {"network": s["network"], "predict rest": s["predict"] - s["network"], "decoder": s["decoder"],
                "decode rest": s["decode"] - s["decoder"], "env Python": total - s["predict"] - s["decode"],
                "total": total}

    def remove(self) -> None:
        for owner, name, had_own, previous in reversed(self.installed):
            if had_own:
                setattr(owner, name, previous)
            else:
                delattr(owner, name)
        self.installed = []


def timed_step(env, clock: StepClock, action: np.ndarray) -> dict[str, float]:
    clock.start_step()
    start = time.perf_counter()
    env.step(action)
    return clock.parts(time.perf_counter() - start)


def summarize(steps: list[dict[str, float]]) -> dict:
    """Median and mean per part over the steps (`total` included)."""
    keys = (*PARTS, "total")
    return {"median_ms": {key: 1000 * statistics.median(step[key] for step in steps) for key in keys},
            "mean_ms": {key: 1000 * statistics.fmean(step[key] for step in steps) for key in keys},
            "steps": len(steps)}


def count_ops(env, clock: StepClock, actions: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """Dispatcher ops per step by part, from torch.profiler: {"all": nested included, "top": called from Python}.

    "top" counts the ops whose caller is not another op (what Python or compiled code
    dispatches itself); "all" adds the ops they decompose into (aten::linear -> aten::t, addmm, ...).
    """
    from torch.profiler import ProfilerActivity, profile

    clock.label = True
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for action in actions:
                env.step(action)
    finally:
        clock.label = False
    parts_of_label = {label: part for part, label in PROFILE_LABELS.items()}
    counts = {kind: dict.fromkeys(("network", "predict", "decoder", "decode", "env"), 0) for kind in ("all", "top")}
    for event in prof.events():
        if "::" not in event.name or event.name.startswith("hwm::"):
            continue
        owners, parent, top = set(), event.cpu_parent, True
        while parent is not None:
            if parent.name in parts_of_label:
                owners.add(parts_of_label[parent.name])
            elif "::" in parent.name:
                top = False
            parent = parent.cpu_parent
        part = next((p for p in ("network", "predict", "decoder", "decode") if p in owners), "env")
        counts["all"][part] += 1
        counts["top"][part] += top
    steps = len(actions)
    return {kind: {"network": c["network"] / steps, "predict rest": c["predict"] / steps,
                   "decoder": c["decoder"] / steps, "decode rest": c["decode"] / steps,
                   "env Python": c["env"] / steps, "total": sum(c.values()) / steps}
            for kind, c in counts.items()}


def breakdown(envs: dict, rounds: int, repeats: int, profile_steps: int = 3, seed: int = 0) -> dict[str, dict]:
    """{setting: {"median_ms", "mean_ms", "steps", "ops_per_step", "first_step_s"}} for reset envs stepped round-robin.

    Each env gets the same action sequence; its first step (compilation) and a second one
    (a recompilation for a changed guard) are untimed and reported as `first_step_s`.
    """
    clocks = {name: StepClock(env) for name, env in envs.items()}
    rngs = {name: np.random.default_rng(seed) for name in envs}

    def action(name: str) -> np.ndarray:
        return rngs[name].uniform(-1, 1, envs[name].action_space.shape).astype(np.float32)

    try:
        result = {}
        for name, env in envs.items():
            start = time.perf_counter()
            env.step(action(name))
            result[name] = {"first_step_s": time.perf_counter() - start}
            env.step(action(name))
        steps: dict[str, list] = {name: [] for name in envs}
        for _ in range(rounds):
            for name, env in envs.items():
                steps[name] += [timed_step(env, clocks[name], action(name)) for _ in range(repeats)]
        for name, env in envs.items():
            result[name].update(summarize(steps[name]))
            result[name]["ops_per_step"] = count_ops(env, clocks[name], [action(name) for _ in range(profile_steps)])
        return result
    finally:
        for clock in clocks.values():
            clock.remove()


def make_envs(checkpoint: str, settings: dict, device: str = "cpu") -> dict:
    from hwm_env.world_model_env import HWMEnv

    envs = {}
    for name, (precision, compile) in settings.items():
        envs[name] = HWMEnv(checkpoint=checkpoint, obs_mode="rgb", device=device, precision=precision,
                            compile=compile)
        envs[name].reset(seed=0)
    return envs


def markdown(result: dict, command: str) -> str:
    from models import tables

    machine = result["machine"]
    lines = [f"# Single env `rgb` step, broken down ({machine['torch_threads']} threads)", "",
             f"Command: `{command}`", "",
             f"Load average (1, 5, 15 min) at the start: {machine['load_average_start']}; at the end: "
             f"{machine['load_average_end']}. Each setting's env stepped round-robin in one process; ms are medians "
             "over all timed steps (`total` is the median step, so the parts add up to about it; means in the JSON). "
             "`ops` = dispatcher ops per step (torch.profiler): called from Python or compiled code / all, nested "
             "included (aten::linear -> aten::t, aten::addmm, ...). A single env's step runs on one thread "
             "(`hwm_env.threads.call_threads`); `compiled` compiles the network, the decoder runs eager.", ""]
    for row in result["rows"]:
        names = list(row["settings"])
        columns = ["part"] + [f"{name} ms" for name in names] + [f"{name} ops" for name in names]
        ops = {name: row["settings"][name]["ops_per_step"] for name in names}
        cells = []
        for part in (*PARTS, "total"):
            cells.append([f"**{part}**" if part == "total" else part]
                         + [f"{row['settings'][name]['median_ms'][part]:.2f}" for name in names]
                         + [f"{ops[name]['top'][part]:.0f} / {ops[name]['all'][part]:.0f}" for name in names])
        compiled = [f"{name} {row['settings'][name]['compile']['compile_seconds']:.0f} s" for name in names
                    if row["settings"][name].get("compile", {}).get("compile_seconds") is not None]
        intro = (f"**{row['family']}** (`{row['checkpoint']}`, {row['settings'][names[0]]['steps']} steps each"
                 + (f"; compilation: {', '.join(compiled)}" if compiled else "") + ")")
        lines += [tables.markdown_table(columns, cells, align="l" + "r" * (len(columns) - 1), intro=intro), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--rounds", type=int, default=5, help="round-robin rounds (default 5)")
    parser.add_argument("--repeats", type=int, default=40, help="steps per setting per round (default 40)")
    parser.add_argument("--profile-steps", type=int, default=3, help="profiled steps for the op counts (default 3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/step_breakdown")
    args = parser.parse_args(argv)

    import torch

    import hwm_env  # noqa: F401  (headless MuJoCo, OMP wait policy)
    from models.atomic import atomic_write_text

    torch.set_num_threads(args.threads)
    torch._dynamo.config.cache_size_limit = 64  # several envs' models share the methods' code
    warnings.filterwarnings("ignore", message="Mismatch dtype between input and weight")
    command = shlex.join(["python", "benchmarks/step_breakdown.py", *(argv if argv is not None else sys.argv[1:])])
    result = {"command": command, "rows": [],
              "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "torch": torch.__version__, "platform": platform.platform(),
                          "load_average_start": _load_average(), "load_average_end": None}}
    out = Path(args.out)
    for family in args.families:
        envs = make_envs(FAMILIES[family], SETTINGS[family])
        settings = breakdown(envs, args.rounds, args.repeats, args.profile_steps)
        for name, env in envs.items():
            settings[name]["compile"] = env.unwrapped.runner.compile_report
            env.close()
        result["rows"].append({"family": family, "checkpoint": FAMILIES[family], "settings": settings})
        result["machine"]["load_average_end"] = _load_average()
        atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2))
        atomic_write_text(out.with_suffix(".md"), markdown(result, command))  # a cut-short run keeps its rows
        print(f"{family}: " + ", ".join(f"{name} {s['median_ms']['total']:.2f} ms" for name, s in settings.items()),
              flush=True)
    print(markdown(result, command))
    return 0


def _load_average() -> list[float] | None:
    return [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None


if __name__ == "__main__":
    raise SystemExit(main())
