"""`hwm bench planning`: the quick protocol end to end on tiny checkpoints, its pieces, and bad input."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

import hwm_env  # noqa: F401  (headless MuJoCo)
from env_fixtures import build_checkpoints
from hwm_env.cli import main
from planners.benchmark import (
    HeldActionContext,
    HeldActionDynamics,
    Protocol,
    add_oracle_gaps,
    format_settings,
    parse_overrides,
    planner_settings,
    run_planning_benchmark,
    strided_context,
)

ROW_KEYS = {"task", "model", "planner", "success_rate", "successes", "episodes", "success_interval",
            "final_error_mean", "final_error_std", "start_error_mean", "success_threshold", "seconds_per_plan",
            "cpu_seconds_per_plan", "plans", "hyperparameters", "protocol", "final_errors", "episode_successes",
            "oracle_gap", "oracle_gap_interval", "device", "torch_threads"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("planning-checkpoints"))


@pytest.fixture(scope="module")
def quick_run(checkpoints, tmp_path_factory):
    """One `--quick` run of every row through the CLI: (exit code, rows, JSON path)."""
    out = tmp_path_factory.mktemp("planning-out") / "planning.json"
    code = main(["bench", "planning", "--quick", "--flow", str(checkpoints["flow"]), "--masked",
                 str(checkpoints["masked"]), "--json", str(out), "--threads", "2", "--device", "cpu"])
    return code, json.loads(out.read_text()) if out.exists() else None, out


def test_quick_run_writes_every_row_with_the_schema(quick_run):
    code, rows, out = quick_run
    assert code == 0 and isinstance(rows, list)
    assert [(row["model"], row["planner"]) for row in rows] == [
        ("flow", "CEM"), ("flow", "MPPI"), ("masked", "CEM"), ("masked", "MPPI"),
        ("oracle", "CEM"), ("oracle", "MPPI"), ("random", "none"), ("hold", "none"), ("scripted", "none"),
    ]
    for row in rows:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert row["task"] == "aim" and row["episodes"] == 2 and len(row["final_errors"]) == 2
        assert row["successes"] == sum(error < row["success_threshold"] for error in row["final_errors"])
        assert row["successes"] == sum(row["episode_successes"])
        assert row["success_rate"] == row["successes"] / 2
        low, high = row["success_interval"]
        assert 0 <= low <= row["success_rate"] <= high <= 1
        if row["model"] in ("flow", "masked"):
            oracle = next(r for r in rows if r["model"] == "oracle" and r["planner"] == row["planner"])
            assert row["oracle_gap"] == oracle["success_rate"] - row["success_rate"]
            # the planning sampler, whatever the checkpoint's default (the fixtures' is 2 steps)
            assert row["sampling_steps"] == 1
            assert row["temperature"] == (0.0 if row["model"] == "masked" else None)
        else:
            assert row["oracle_gap"] is None
        assert np.isfinite(row["final_error_mean"]) and row["final_error_mean"] >= 0
        assert row["protocol"]["steps"] == 4 and row["protocol"]["action_repeat"] == 2
        if row["planner"] == "none":
            assert row["seconds_per_plan"] is None and row["cpu_seconds_per_plan"] is None and row["plans"] == 0
        else:
            # 2 held actions per episode, a plan before each
            assert row["seconds_per_plan"] > 0 and row["cpu_seconds_per_plan"] > 0 and row["plans"] == 4
            assert row["hyperparameters"]["num_samples"] == 6 and row["hyperparameters"]["horizon"] == 1
    table = out.with_suffix(".md").read_text()
    assert "| model | planner | success | oracle gap |" in table and table.count("\n| ") == 1 + len(rows)
    assert "Flow-HWM" in table and "oracle (simulator)" in table and "Task `aim`" in table and "< 0.03" in table


def test_update_replaces_only_the_rows_run_now(quick_run, tmp_path, capsys):
    _, rows, out = quick_run
    results = tmp_path / "planning.json"
    shutil.copy(out, results)
    assert main(["bench", "planning", "--quick", "--models", "hold", "--json", str(results), "--update",
                 "--threads", "2", "--device", "cpu"]) == 0
    updated = json.loads(results.read_text())
    assert [(r["model"], r["planner"]) for r in updated] == [(r["model"], r["planner"]) for r in rows]
    assert [r for r in updated if r["model"] != "hold"] == [r for r in rows if r["model"] != "hold"]
    assert results.with_suffix(".md").read_text().count("\n| ") == 1 + len(rows)
    # one planner of a model: its other planner's row stays
    assert main(["bench", "planning", "--quick", "--models", "oracle", "--planners", "cem", "--json", str(results),
                 "--update", "--threads", "2", "--device", "cpu"]) == 0
    before, updated = updated, json.loads(results.read_text())
    assert [(r["model"], r["planner"]) for r in updated] == [(r["model"], r["planner"]) for r in rows]
    assert [r for r in updated if r["planner"] != "CEM"] == [r for r in before if r["planner"] != "CEM"]
    capsys.readouterr()
    assert main(["bench", "planning", "--quick", "--models", "hold", "--update"]) == 2
    assert "--update needs --json" in capsys.readouterr().err


def test_every_row_sees_the_same_episodes(quick_run):
    _, rows, _ = quick_run
    assert len({row["start_error_mean"] for row in rows}) == 1
    hold = next(row for row in rows if row["model"] == "hold")
    # holding the start pose leaves the view joints where they started
    assert hold["final_error_mean"] == pytest.approx(hold["start_error_mean"], abs=5e-3)


def test_oracle_beats_random_actions(quick_run):
    _, rows, _ = quick_run
    random_error = next(row for row in rows if row["model"] == "random")["final_error_mean"]
    for row in rows:
        if row["model"] == "oracle":
            assert row["final_error_mean"] < random_error, row


def test_oracle_reaches_the_aim_goals_the_hold_baseline_misses(checkpoints):
    """Full-length episodes: the simulator as its own model (image cost) succeeds in both, holding still in neither."""
    protocol = Protocol(episodes=2, cost="image")  # the task's 48 frames, the default planner budget
    oracle, hold = run_planning_benchmark(("oracle", "hold"), ("mppi",), protocol=protocol, progress=False,
                                          oracle_tokenizer=str(checkpoints["flow"] / "tokenizer"), log=lambda _: None)
    assert (oracle["model"], oracle["successes"], oracle["success_rate"]) == ("oracle", 2, 1.0)
    assert (hold["model"], hold["successes"], hold["success_rate"]) == ("hold", 0, 0.0)
    assert max(oracle["final_errors"]) < oracle["success_threshold"] < min(hold["final_errors"])


def test_probe_cost_plans_every_model_kind_on_a_state_task(checkpoints, tmp_path):
    """--cost probe: world models decode their predictions for the probe, the oracle's frames are read directly."""
    from env_fixtures import build_probe_checkpoint

    probe = build_probe_checkpoint(tmp_path / "probe")
    out = tmp_path / "probe.json"
    assert main(["bench", "planning", "--quick", "--task", "look-at", "--models", "flow,masked,oracle",
                 "--planners", "mppi", "--flow", str(checkpoints["flow"]), "--masked", str(checkpoints["masked"]),
                 "--cost", "probe", "--probe", str(probe), "--json", str(out), "--threads", "2",
                 "--device", "cpu"]) == 0
    rows = json.loads(out.read_text())
    assert [row["model"] for row in rows] == ["flow", "masked", "oracle"]
    assert all(row["task"] == "look-at" and row["protocol"]["cost"] == "probe" for row in rows)
    assert all(np.isfinite(row["final_error_mean"]) for row in rows)
    assert "read from predicted frames by the state probe" in out.with_suffix(".md").read_text()


def test_seeded_runs_repeat_exactly(checkpoints):
    protocol = Protocol(episodes=1, steps=4, action_repeat=2)
    kwargs = dict(flow=str(checkpoints["flow"]), protocol=protocol, quick=True, progress=False, log=lambda _: None)
    first, second = (run_planning_benchmark(("flow", "oracle", "random"), ("cem",), **kwargs) for _ in range(2))
    assert [row["final_errors"] for row in first] == [row["final_errors"] for row in second]
    other = run_planning_benchmark(("random",), ("cem",), **{**kwargs, "protocol": Protocol(
        episodes=1, steps=4, action_repeat=2, seed_set="selection")})
    assert other[0]["final_errors"] != first[-1]["final_errors"]


def test_missing_default_checkpoint_skips_but_requested_one_fails(tmp_path):
    messages = []
    protocol = Protocol(episodes=1, steps=2, action_repeat=1)
    rows = run_planning_benchmark(("flow", "hold"), ("cem",), flow=str(tmp_path / "missing"), protocol=protocol,
                                  quick=True, progress=False, log=messages.append)
    assert [row["model"] for row in rows] == ["hold"]
    assert len(messages) == 1 and "skipping the Flow-HWM rows" in messages[0] and "missing" in messages[0]
    with pytest.raises(FileNotFoundError, match="Flow-HWM rows: checkpoint .*missing"):
        run_planning_benchmark(("flow", "hold"), ("cem",), flow=str(tmp_path / "missing"), protocol=protocol,
                               quick=True, progress=False, required=("flow",))


# --- pieces ------------------------------------------------------------------------------------


class CountingDynamics:
    """Trajectory = the running sum of the first action entry, so holds are easy to read."""

    action_dim = 2

    def __init__(self):
        self.horizons = []

    def rollout(self, state, actions):
        self.horizons.append(actions.shape[1])
        return actions[..., :1].cumsum(dim=1)  # (N, H, 1)


def test_held_actions_last_repeat_frames_and_return_the_end_of_each_hold():
    inner = CountingDynamics()
    actions = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]])  # (1, 2 holds, 2)
    trajectory = HeldActionDynamics(inner, repeat=3).rollout(None, actions)
    assert inner.horizons == [6]
    assert trajectory.shape == (1, 2, 1) and trajectory.flatten().tolist() == [3.0, 9.0]


def test_held_action_context_sees_every_frame():
    calls = []

    def context(env, frame, info):
        calls.append((frame, info["executed_action"]))
        return len(calls)

    held = HeldActionContext(context)
    held(None, "start", {"executed_action": None})
    state = held(None, "f2", {"executed_action": "a", "frames": ["f1", "f2"]})
    assert calls == [("start", None), ("f1", "a"), ("f2", "a")] and state == 3


def test_held_action_context_gives_a_strided_model_the_last_frame_of_each_stride():
    calls = []

    def context(env, frame, info):
        calls.append((frame, info["executed_action"]))
        return len(calls)

    held = HeldActionContext(context, frame_stride=2)
    held(None, "f4", {"executed_action": "a", "frames": ["f1", "f2", "f3", "f4"]})
    assert calls == [("f2", "a"), ("f4", "a")]
    with pytest.raises(ValueError, match="3 frames is not a whole number of model steps .frame stride 2"):
        held(None, "f3", {"executed_action": "a", "frames": ["f1", "f2", "f3"]})


def test_strided_context_ends_at_the_last_frame_and_repeats_the_earliest():
    frames, actions = np.arange(8), np.arange(8) * 10
    picked, picked_actions = strided_context(frames, actions, num_past=3, frame_stride=2)
    assert picked.tolist() == [3, 5, 7] and picked_actions.tolist() == [30, 50, 70]
    assert strided_context(frames, actions, num_past=3, frame_stride=4)[0].tolist() == [3, 3, 7]
    assert strided_context(frames, actions, num_past=2, frame_stride=1)[0].tolist() == [6, 7]


def test_a_strided_world_model_plans_one_model_step_per_stride(tmp_path):
    """A stride-2 model: a hold of 4 frames is 2 model steps; a hold of 3 frames is refused."""
    from env_fixtures import build_flow_checkpoint
    from planners.benchmark import WorldModelPlanning

    strided = build_flow_checkpoint(tmp_path / "flow-stride2", frame_stride=2)
    planning = WorldModelPlanning("flow", strided)
    assert planning.frame_stride == 2 and planning.describe()["frame_stride"] == 2
    assert planning.model_steps_per_hold(4) == 2
    with pytest.raises(ValueError, match="frame stride 2 does not divide the action repeat 3"):
        planning.model_steps_per_hold(3)
    protocol = Protocol(episodes=1, steps=8, action_repeat=4)
    rows = run_planning_benchmark(("flow",), ("cem",), flow=str(strided), protocol=protocol, quick=True,
                                  progress=False, log=lambda _: None)
    assert rows[0]["plans"] == 2 and np.isfinite(rows[0]["final_error_mean"])
    assert rows[0]["frame_stride"] == 2 and "frame stride 2" in format_settings(rows[0])


def test_oracle_gap_and_its_interval_on_known_counts():
    rows = [{"task": "aim", "model": model, "planner": "MPPI", "successes": successes, "episodes": 100,
             "success_rate": successes / 100} for model, successes in (("flow", 60), ("oracle", 80))]
    rows.append({"task": "aim", "model": "random", "planner": "none", "successes": 2, "episodes": 100,
                 "success_rate": 0.02})
    flow, oracle, random = add_oracle_gaps(rows)
    assert flow["oracle_gap"] == pytest.approx(0.2) and flow["fraction_of_oracle"] == pytest.approx(0.75)
    low, high = flow["oracle_gap_interval"]
    # 81/102 - 61/102 = 0.1961 +- 1.96 * sqrt(0.7941 * 0.2059 / 102 + 0.5980 * 0.4020 / 102) = 0.1233
    assert (low, high) == pytest.approx((0.1961 - 0.1233, 0.1961 + 0.1233), abs=2e-4)
    assert oracle["oracle_gap"] is None and random["oracle_gap"] is None


def test_summary_table_puts_the_planners_of_each_task_side_by_side(tmp_path, capsys):
    """benchmarks/planning_table.py (the README's table) from per-task rows: one line per task and model,
    MPPI and CEM in their own columns, gaps against the same planner's oracle."""
    import importlib.util

    def row(task, model, planner, successes, seconds=None):
        return {"task": task, "model": model, "planner": planner, "successes": successes, "episodes": 100,
                "success_rate": successes / 100, "final_error_mean": 0.1, "start_error_mean": 0.25,
                "seconds_per_plan": seconds}

    aim = [row("aim", "flow", "MPPI", 60, 1.5), row("aim", "oracle", "MPPI", 80, 0.5),
           row("aim", "flow", "CEM", 40, 1.2), row("aim", "oracle", "CEM", 50, 0.4), row("aim", "hold", "none", 0)]
    reach = [row("reach", "masked", "MPPI", 3, 0.7), row("reach", "oracle", "MPPI", 1, 0.6)]
    paths = []
    for name, rows in (("aim", aim), ("reach", reach)):
        paths.append(tmp_path / f"planning_{name}.json")
        paths[-1].write_text(json.dumps(rows))
    spec = importlib.util.spec_from_file_location("planning_table", "benchmarks/planning_table.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(path) for path in paths] + ["--out", str(tmp_path / "table.md")]) == 0
    lines = [line for line in (tmp_path / "table.md").read_text().splitlines() if line.startswith("| ")][1:]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert [line[:2] for line in cells] == [["`aim` (0.250 rad)", "Flow-HWM"], ["", "oracle (simulator)"],
                                            ["", "hold start pose"], ["`reach` (0.250 m)", "Masked-HWM"],
                                            ["", "oracle (simulator)"]]
    flow = cells[0]
    assert flow[2].endswith("(60/100)") and flow[4].endswith("(40/100)")
    assert flow[3].startswith("+0.20") and flow[5].startswith("+0.10")  # each against its own planner's oracle
    assert flow[7] == "1.50" and cells[2][4] == "-" and cells[3][3].startswith("-0.02")
    (tmp_path / "bad.json").write_text("{}")
    assert script.main([str(tmp_path / "bad.json")]) == 2
    assert "expected the JSON list of rows" in capsys.readouterr().err
    assert script.main([]) == 0  # by default: the repository's planning_T.json, in the tasks' order
    printed = capsys.readouterr().out
    assert printed.index("| `aim`") < printed.index("| `look-at`") < printed.index("| `reach`")


def test_planner_settings_merge_and_check():
    assert planner_settings("cem", {"horizon": 2})["horizon"] == 2
    assert planner_settings("mppi", quick=True)["num_samples"] == 6
    assert parse_overrides("mppi", ["temperature=1", "num-samples=32"]) == {"temperature": 1.0, "num_samples": 32}
    with pytest.raises(ValueError, match="unknown hyper-parameter 'alpha'"):
        parse_overrides("cem", ["alpha=1"])
    with pytest.raises(ValueError, match="horizon must be int"):
        parse_overrides("cem", ["horizon=1.5"])
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_overrides("cem", ["horizon"])


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--models", "flow,dreamer"], r"unknown name\(s\) \['dreamer'\]"),
        (["--models", "hold,hold"], "repeated"),
        (["--planners", "ilqr"], r"unknown name\(s\) \['ilqr'\]"),
        (["--episodes", "0"], r"episodes \(--episodes\) must be an integer >= 1, got 0"),
        (["--steps", "5", "--action-repeat", "2"], r"steps \(5\) must be a multiple of action-repeat \(2\)"),
        (["--replan-every", "2"], r"replan-every \(2\) must not exceed the cem horizon \(1\)"),
        (["--cem", "num_samples=4", "num_elites=8"], "num_elites <= num_samples"),
        (["--task", "fly"], "unknown task 'fly'; known: aim, look-at, reach, push"),
        (["--seed-set", "dev"], "seed set must be one of"),
        (["--mppi", "horizon=0"], "MPPI: horizon must be >= 1, got 0"),
        (["--mppi", "num_samples=4", "num_elites=8"], "need 1 <= num_elites <= num_samples"),
        (["--flow-steps", "0"], "--flow-steps must be >= 1"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(argv, message, capsys):
    assert main(["bench", "planning", "--models", "hold", *argv]) == 2  # a later --models wins
    err = capsys.readouterr().err
    assert err.startswith("hwm: error: ") and re.search(message, err), err


def test_wrong_family_and_missing_requested_checkpoint(checkpoints, tmp_path, capsys):
    assert main(["bench", "planning", "--quick", "--models", "flow", "--flow", str(checkpoints["masked"])]) == 2
    assert "is a 'masked' checkpoint, the flow rows need a 'flow' one" in capsys.readouterr().err
    assert main(["bench", "planning", "--quick", "--models", "masked", "--masked", str(tmp_path / "nope")]) == 2
    assert "Masked-HWM rows: checkpoint" in capsys.readouterr().err


def test_image_cost_plans_every_model_kind(checkpoints, tmp_path):
    """--cost image: world models decode their predictions (continuous and token), the oracle scores frames."""
    out = tmp_path / "image.json"
    assert main(["bench", "planning", "--quick", "--models", "flow,masked,oracle", "--planners", "cem",
                 "--flow", str(checkpoints["flow"]), "--masked", str(checkpoints["masked"]), "--cost", "image",
                 "--cost-blur", "2", "--precision", "fp32", "--json", str(out), "--threads", "2",
                 "--device", "cpu"]) == 0
    rows = json.loads(out.read_text())
    assert [row["model"] for row in rows] == ["flow", "masked", "oracle"]
    assert all(row["protocol"]["cost"] == "image" and row["protocol"]["cost_blur"] == 2.0 for row in rows)
    assert [row.get("precision") for row in rows] == ["fp32", "fp32", None]  # --precision fp32; the oracle has none
    assert all(np.isfinite(row["final_error_mean"]) for row in rows)
    assert "MSE of decoded frames to the goal image, both blurred (sigma 2 px)" in out.with_suffix(".md").read_text()


def test_protocol_bad_input():
    with pytest.raises(ValueError, match=r"cost must be one of \['goal', 'image', 'probe'\], got 'pixels'"):
        Protocol(cost="pixels")
    with pytest.raises(ValueError, match="unknown task 'fly'; known: aim, look-at, reach, push"):
        Protocol(task="fly")
    with pytest.raises(ValueError, match="cost-blur must be a number of pixels >= 0"):
        Protocol(cost="image", cost_blur=-1.0)


def test_a_probe_without_the_tasks_targets_is_refused(tmp_path, capsys):
    from models.checkpoint import save_checkpoint
    from models.probe import ProbeConfig, StateProbe

    probe = StateProbe(ProbeConfig(channels=[8, 8, 8, 8], feature_dim=16, norm_groups=4,
                                   target_names=[f"S{i}" for i in range(25)]))
    save_checkpoint(tmp_path / "state-only", probe.state_dict(), probe.checkpoint_config())
    assert main(["bench", "planning", "--quick", "--task", "look-at", "--models", "oracle", "--cost", "probe",
                 "--probe", str(tmp_path / "state-only"), "--threads", "2", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "state-only" in err and "task 'look-at' needs the targets" in err and "RED_BOX_X" in err


def test_the_cli_names_every_task_without_loading_mujoco():
    import subprocess
    import sys

    from hwm_env.tasks import TASKS

    code = ("import sys\nfrom hwm_env import cli\ntry:\n    cli.main(['bench', 'planning', '--help'])\n"
            "except SystemExit:\n    pass\nprint('mujoco' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
    assert all(name in " ".join(out.split()) for name in TASKS)
