"""benchmarks/sampler_speed.py on tiny checkpoints: both samplers of each family are timed in the same
process and reported with the checkpoint's default step count (no timing is asserted)."""
from __future__ import annotations

import json

import hwm_env  # noqa: F401  (headless MuJoCo)
from env_fixtures import build_checkpoints
from scripts import REPO, load_script


def test_sampler_speed_times_one_step_and_the_default(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # it imports its sibling speed_settings
    benchmark = load_script("benchmarks/sampler_speed.py")
    checkpoints = build_checkpoints(tmp_path / "checkpoints")
    monkeypatch.setattr(benchmark, "FAMILIES", {"Flow": str(checkpoints["flow"]), "Masked": str(checkpoints["masked"])})
    out = tmp_path / "speed"
    assert benchmark.main(["--rounds", "1", "--num-envs", "3", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [(row["family"], row["steps"]) for row in rows] == [
        ("Flow", "1 step"), ("Flow", "default (2 steps)"), ("Masked", "1 step"), ("Masked", "default (2 steps)")]
    for row in rows:
        assert row["single_ms"] > 0 and row["vector_env_steps_per_s"] > 0
        assert row["single"]["precision"] in ("fp32", "bf16")
    table = out.with_suffix(".md").read_text()
    assert "vector env, 3 envs" in table and table.count("\n| ") == 5
