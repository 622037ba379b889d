"""`hwm bench policies`: rank policies by their success in a world model's imagination and in HWM-Sim-v0.

1X ranks policy checkpoints with its world model and Ctrl-World ranks policies in
imagination; whether such a ranking agrees with the real one is the question here. Each
policy runs the same scoring episodes (policy-scoring seed domain) in both worlds, with the
same observation (`TaskObservation`): in the simulator success is the task's predicate on
the state, in imagination the same predicate on the probe's reading of the last predicted
frame. Reported: each policy's two success rates with Wilson intervals and their difference,
Spearman's rho and Kendall's tau-b between the two (scipy.stats), and a scatter plot.

Policies (at least 8 of spread quality): the PPO zips of a `hwm train policy` run (the
snapshots along its imagination run, its final imagination, sim-budget and sim-unlimited
policies), the best of those with epsilon-random noise, aim's feed-forward controller and
its noisy versions (aim only), random, hold.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from models import tables
from models.atomic import atomic_write_text
from models.intervals import format_rate
from train.policy.policies import aim_feed_forward_policy, hold_policy, noisy_policy, ppo_policy, random_policy

NOISE_LEVELS = (0.3, 0.6)  # epsilon of the noisy versions


@dataclasses.dataclass
class RankedPolicy:
    name: str
    act: Callable
    source: str  # where it comes from: a policy file or a constructor


def rank_agreement(sim_rates, imagined_rates) -> dict[str, float]:
    """Spearman's rho and Kendall's tau-b between two score lists (NaN where a list is constant)."""
    from scipy import stats

    sim_rates, imagined_rates = np.asarray(sim_rates, float), np.asarray(imagined_rates, float)
    if sim_rates.shape != imagined_rates.shape or sim_rates.size < 2:
        raise ValueError(f"need two equal lists of >= 2 rates, got {sim_rates.size} and {imagined_rates.size}")
    if np.ptp(sim_rates) == 0 or np.ptp(imagined_rates) == 0:
        return {"spearman": float("nan"), "kendall": float("nan")}
    return {"spearman": float(stats.spearmanr(sim_rates, imagined_rates).statistic),
            "kendall": float(stats.kendalltau(sim_rates, imagined_rates).statistic)}


def run_policies(run: str | Path | None, setup) -> list[RankedPolicy]:
    """The policies to rank: a run's PPO zips (snapshots in step order, then the finals), noisy versions, baselines."""
    from train.policy.ppo import load_policy

    size = setup.commander.space.shape[0]
    policies: list[RankedPolicy] = []
    if run is not None:
        run = Path(run)
        if not run.is_dir():
            raise FileNotFoundError(f"--run '{run}' is not a folder (expected the OUT of `hwm train policy`)")
        snapshots = sorted((run / "imagination" / "snapshots").glob("step-*.zip"),
                           key=lambda path: int(re.findall(r"\d+", path.stem)[0]))
        finals = [run / f"{row}.zip" for row in ("imagination", "sim-budget", "sim-unlimited")]
        for path in snapshots + [path for path in finals if path.is_file()]:
            label = f"imagination {path.stem}" if path.parent.name == "snapshots" else path.stem
            policies.append(RankedPolicy(label, ppo_policy(load_policy(path, setup.about)), str(path)))
        if not policies:
            raise FileNotFoundError(f"{run}: no policies (imagination/snapshots/step-*.zip, imagination.zip, ...)")
        best = next((policy for policy in policies if policy.name == "sim-unlimited"), policies[-1])
        for epsilon in NOISE_LEVELS:
            policies.append(RankedPolicy(f"{best.name}, eps {epsilon}", noisy_policy(best.act, size, epsilon),
                                         f"{best.source} + epsilon-random {epsilon}"))
    if setup.task.name == "aim":
        feed_forward = aim_feed_forward_policy(setup.observation, setup.commander, setup.sim.action_from_state)
        policies.append(RankedPolicy("feed-forward", feed_forward, "aim_feed_forward_policy"))
        for epsilon in NOISE_LEVELS:
            policies.append(RankedPolicy(f"feed-forward, eps {epsilon}", noisy_policy(feed_forward, size, epsilon),
                                         f"aim_feed_forward_policy + epsilon-random {epsilon}"))
    policies.append(RankedPolicy("random", random_policy(size), "random_policy"))
    policies.append(RankedPolicy("hold", hold_policy(size), "hold_policy"))
    return policies


def rank_policies(policies: list[RankedPolicy], setup, batch_size: int = 64, log=print) -> dict[str, Any]:
    """Score every policy in both worlds on `setup.episodes`; the rows and the agreement of the rankings."""
    from train.policy.scoring import score_in_imagination

    rows = []
    for policy in policies:
        sim = setup.score(policy.act, f"{policy.name} in HWM-Sim-v0")
        imagined = score_in_imagination(policy.act, setup.episodes, setup.observation, setup.commander,
                                        setup.experiment.scoring.steps, batch_size,
                                        f"{policy.name} in imagination", setup.experiment.progress,
                                        **setup.world_model)
        episodes = len(sim["successes"])
        row = {"policy": policy.name, "source": policy.source, "episodes": episodes,
               "sim_successes": int(sum(sim["successes"])), "imagined_successes": int(sum(imagined["successes"])),
               "sim_error_mean": float(np.mean(sim["errors"])), "imagined_error_mean": float(np.mean(imagined["errors"])),
               "sim_seconds": sim["seconds"], "imagined_seconds": imagined["seconds"]}
        row["sim_rate"], row["imagined_rate"] = row["sim_successes"] / episodes, row["imagined_successes"] / episodes
        row["rate_error"] = row["imagined_rate"] - row["sim_rate"]
        rows.append(row)
        log(f"{policy.name}: sim {row['sim_successes']}/{episodes}, imagination {row['imagined_successes']}/{episodes}")
    sim_rates = [row["sim_rate"] for row in rows]
    agreement = rank_agreement(sim_rates, [row["imagined_rate"] for row in rows])
    agreement["mean_abs_rate_error"] = float(np.mean([abs(row["rate_error"]) for row in rows]))
    errors = rank_agreement([-row["sim_error_mean"] for row in rows], [-row["imagined_error_mean"] for row in rows])
    agreement["error_spearman"], agreement["error_kendall"] = errors["spearman"], errors["kendall"]
    return {"task": setup.task.name, "world_model": setup.world_model, "scoring": dataclasses.asdict(
        setup.experiment.scoring), "policies": rows, "agreement": agreement}


def ranking_markdown(results: dict[str, Any], command: str) -> str:
    agreement, scoring = results["agreement"], results["scoring"]
    intro = (
        f"Task `{results['task']}`, {len(results['policies'])} policies, {scoring['episodes']} episodes of the "
        f"policy-scoring seed domain (set {scoring['seed_set']}) each, in HWM-Sim-v0 (truth) and in "
        f"`{Path(results['world_model']['checkpoint']).name}` (success read by the probe). Success rate: "
        f"Spearman {agreement['spearman']:.2f}, Kendall tau-b {agreement['kendall']:.2f}, mean |imagined - sim| "
        f"{agreement['mean_abs_rate_error']:.2f}; final task error: Spearman {agreement['error_spearman']:.2f}, "
        f"Kendall {agreement['error_kendall']:.2f}. Brackets: 95% Wilson intervals.\n\nCommand: `{command}`"
    )
    columns = ["policy", "success in sim", "success in imagination", "imagined - sim", "final error sim",
               "final error imagined"]
    cells = [[row["policy"], format_rate(row["sim_successes"], row["episodes"]),
              format_rate(row["imagined_successes"], row["episodes"]), f"{row['rate_error']:+.2f}",
              f"{row['sim_error_mean']:.3f}", f"{row['imagined_error_mean']:.3f}"] for row in results["policies"]]
    return tables.markdown_table(columns, cells, align="lrrrrr", intro=intro)


def scatter_plot(results: dict[str, Any], path: str | Path) -> Path:
    """Imagined against simulated success rate and final task error, one labelled point per policy."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ValueError("--plot needs matplotlib: pip install 'humanoid-world-models[plots]'") from error
    rows, agreement = results["policies"], results["agreement"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 5))
    panels = (("rate", "success", agreement["kendall"], agreement["spearman"]),
              ("error_mean", "final task error", agreement["error_kendall"], agreement["error_spearman"]))
    for axis, (key, label, kendall, spearman) in zip(axes, panels):
        x = [row[f"sim_{key}"] for row in rows]
        y = [row[f"imagined_{key}"] for row in rows]
        high = max(max(x), max(y), 1e-6) * 1.05
        axis.plot([0, high], [0, high], color="0.7", linestyle="--", linewidth=1)
        axis.scatter(x, y)
        for row, x_value, y_value in zip(rows, x, y):
            axis.annotate(row["policy"], (x_value, y_value), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.set(xlim=(-0.02 * high, high), ylim=(-0.02 * high, high), xlabel=f"{label} in HWM-Sim-v0",
                 ylabel=f"{label} in imagination (probe)", title=f"{label}: Kendall {kendall:.2f}, Spearman {spearman:.2f}")
    figure.suptitle(f"{results['task']}: {len(rows)} policies, {rows[0]['episodes']} episodes each")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def write_ranking(results: dict[str, Any], out: str | Path, command: str) -> tuple[Path, Path]:
    out = Path(out)
    json_path, markdown_path = out.with_suffix(".json"), out.with_suffix(".md")
    atomic_write_text(json_path, json.dumps({**results, "command": command}, indent=2) + "\n")
    atomic_write_text(markdown_path, ranking_markdown(results, command) + "\n")
    return json_path, markdown_path
