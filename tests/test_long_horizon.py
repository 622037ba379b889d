"""The long-horizon evaluation: a state probe's error per horizon beside copy-last, the data mean
and the true frames, the Fréchet distance of its features, and the longest horizon a split allows.

A scripted world model that returns the true next latents (through a lossless tokenizer) must
score exactly the probe's ceiling; one that repeats the last latent exactly copy-last's numbers.
The probe is a stand-in with `models.probe.StateProbe`'s API (fixed pooling + linear readout).
"""
import json
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.data.hwm_format import HWMDataset, HWMWriter
from models.data.windows import WindowDataset
from test_evaluation import ACTION_DIM, SIZE, CopyLastModel, OracleModel, TokenizerDouble
from train.evaluation import evaluate_world_model, frechet_distance, longest_horizon, markdown_table

EPISODES, FRAMES, NUM_STATES = 4, 24, 25
STATE_NAMES = [f"joint_{i}" for i in range(NUM_STATES)]
OBJECT_NAMES = ["red_x", "red_y", "red_z"]


class StandInProbe:
    """`models.probe.StateProbe`'s API: features = 4x4-pooled RGB (N, 3 * (s/4)^2), predict = a fixed
    linear map of them, in target units."""

    def __init__(self, target_names, image_size=(SIZE, SIZE), target_mean=None, target_std=None, seed=0):
        self.target_names = list(target_names)
        self.image_size = tuple(image_size)
        count = len(self.target_names)
        self.target_mean = np.zeros(count) if target_mean is None else np.asarray(target_mean, dtype=np.float64)
        self.target_std = np.ones(count) if target_std is None else np.asarray(target_std, dtype=np.float64)
        cells = 3 * (self.image_size[0] // 4) * (self.image_size[1] // 4)
        self.readout = torch.from_numpy(np.random.default_rng(seed).normal(0, 0.05, (cells, count)))

    def features(self, frames) -> torch.Tensor:
        frames = torch.as_tensor(np.asarray(frames))  # (N, H, W, 3) uint8
        if tuple(frames.shape[1:3]) != self.image_size:
            raise ValueError(f"the probe takes {self.image_size} frames, got {tuple(frames.shape[1:3])}")
        images = frames.permute(0, 3, 1, 2).double() / 255
        return F.avg_pool2d(images, 4).flatten(1)  # (N, F)

    def predict(self, frames) -> np.ndarray:
        return (self.features(frames) @ self.readout).numpy()  # (N, D)


def write_split(path, objects=True, seed=0):
    """test_evaluation's shifted textures, with 25 states and (optionally) 3 object positions per frame."""
    rng = np.random.default_rng(seed)
    with HWMWriter(path, SIZE, SIZE, action_dim=ACTION_DIM, fps=10, action_names=[f"a{i}" for i in range(4)],
                   state_dim=NUM_STATES, source="test", extra_metadata={"state_names": STATE_NAMES},
                   object_position_names=OBJECT_NAMES if objects else None) as writer:
        for _ in range(EPISODES):
            coarse = torch.from_numpy(rng.uniform(0, 255, (1, 3, 6, 6))).float()
            texture = F.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
            texture = texture.clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
            actions = rng.uniform(-1, 1, (FRAMES, ACTION_DIM)).astype(np.float32)
            position, frames, places = np.zeros(2, dtype=int), [], []
            for t in range(FRAMES):
                frames.append(np.roll(texture, tuple(position), axis=(0, 1)))
                places.append(position.copy())
                position = position + np.round(4 * actions[t, :2]).astype(int)
            places = np.array(places, dtype=np.float32)  # (T, 2)
            states = np.concatenate([places, rng.normal(0, 1, (FRAMES, NUM_STATES - 2))], 1).astype(np.float32)
            writer.add_episode(np.stack(frames), actions, states,
                               object_positions=np.concatenate([places, places[:, :1]], 1) if objects else None)
    return HWMDataset(path)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("long_horizon") / "val")


def probe_for(split, **kwargs):
    targets = np.concatenate([split.states, split.object_positions], 1)
    return StandInProbe(STATE_NAMES + OBJECT_NAMES, target_mean=targets.mean(0), target_std=targets.std(0) + 0.5,
                        **kwargs)


def evaluate(model, tokenizer, split, horizon=5, **kwargs):
    return evaluate_world_model(model, tokenizer, split, horizon, episodes=EPISODES, batch_size=3, progress=False,
                                **kwargs)


def test_true_frames_as_prediction_give_the_probe_ceiling(split):
    tokenizer = TokenizerDouble("continuous", factor=1)  # lossless: the oracle's frames are the true frames
    probe = probe_for(split)
    results = evaluate(OracleModel(tokenizer, split), tokenizer, split, probe=probe)
    assert results["recon_psnr"] == results["psnr"]  # the frames really are the true ones
    assert results["probe_error"] == results["true_probe_error"]
    assert results["recon_probe_error"] == results["true_probe_error"]  # a lossless tokenizer reconstructs
    assert set(results["probe_error_by_group"]) == {"joints", "objects"}
    for group in results["probe_error_by_group"].values():
        assert group["model"] == group["true"]
    np.testing.assert_allclose(results["probe_fd"], 0, atol=1e-9)
    # the data-mean baseline by hand: |target_mean - recorded| / target_std at frame start + P + h - 1
    targets = np.concatenate([split.states, split.object_positions], 1).astype(np.float64)
    starts = np.array([start for _, start in results["windows"]])
    rows = starts[:, None] + OracleModel.num_past + np.arange(5)  # (windows, horizon)
    errors = np.abs(probe.target_mean - targets[rows]) / probe.target_std
    np.testing.assert_allclose(results["mean_probe_error"], errors.mean((0, 2)), rtol=1e-12)
    np.testing.assert_allclose(results["probe_error_by_group"]["objects"]["mean"],
                               errors[..., NUM_STATES:].mean((0, 2)), rtol=1e-12)
    # and the model's own error: the probe on the true frames, scored by hand
    frames = np.asarray(split.frames)[rows.reshape(-1)]
    estimate = probe.predict(frames).reshape(*rows.shape, -1)
    np.testing.assert_allclose(results["true_probe_error"],
                               (np.abs(estimate - targets[rows]) / probe.target_std).mean((0, 2)), rtol=1e-12)
    per_window = np.asarray(results["window_probe_error"]["model"])  # (windows, horizon)
    np.testing.assert_allclose(per_window, (np.abs(estimate - targets[rows]) / probe.target_std).mean(2), rtol=1e-12)
    np.testing.assert_allclose(per_window.mean(0), results["probe_error"], rtol=1e-12)
    table = markdown_table(results)
    assert "probe err" in table and "probe FD" in table


def test_copy_last_as_prediction_gives_copy_last(split):
    tokenizer = TokenizerDouble("continuous", factor=1)
    results = evaluate(CopyLastModel(), tokenizer, split, probe=probe_for(split))
    # the same frames, through the probe in batches of another size: equal up to float rounding
    assert results["probe_error"] == pytest.approx(results["copy_last_probe_error"], rel=1e-12)
    assert results["probe_fd"] == pytest.approx(results["copy_last_probe_fd"], rel=1e-9, abs=1e-9)
    for group in results["probe_error_by_group"].values():
        assert group["model"] == pytest.approx(group["copy_last"], rel=1e-12)
    # the scene moves: copying the last frame falls behind the probe's ceiling
    assert results["copy_last_probe_error"][-1] > results["true_probe_error"][-1]
    json.dumps(results)  # plain JSON


def test_a_split_without_objects_scores_joints_only(tmp_path):
    split = write_split(tmp_path / "val", objects=False)
    probe = StandInProbe(STATE_NAMES)
    tokenizer = TokenizerDouble("continuous", factor=4)
    results = evaluate(CopyLastModel(), tokenizer, split, horizon=2, probe=probe)
    assert list(results["probe_error_by_group"]) == ["joints"]
    assert results["probe_error"] == pytest.approx(results["probe_error_by_group"]["joints"]["model"], rel=1e-12)


def test_the_reconstruction_baseline_reads_the_tokenizers_round_trip_of_the_true_frames(split):
    tokenizer = TokenizerDouble("continuous", factor=4)  # lossy: pools 4x4, so details are lost
    probe = probe_for(split)
    results = evaluate(OracleModel(tokenizer, split), tokenizer, split, probe=probe)
    targets = np.concatenate([split.states, split.object_positions], 1).astype(np.float64)
    starts = np.array([start for _, start in results["windows"]])
    rows = starts[:, None] + OracleModel.num_past + np.arange(5)  # (windows, horizon)
    frames = torch.from_numpy(np.asarray(split.frames)[rows.reshape(-1)])
    reconstructed = tokenizer.decode(tokenizer.encode(frames[:, None]))[:, 0]
    estimate = probe.predict(reconstructed).reshape(*rows.shape, -1)
    np.testing.assert_allclose(results["recon_probe_error"],
                               (np.abs(estimate - targets[rows]) / probe.target_std).mean((0, 2)), rtol=1e-9)
    assert results["recon_probe_error"] != results["true_probe_error"]
    # the oracle predicts the true latents, so its decoded frames are the reconstruction
    np.testing.assert_allclose(results["probe_error"], results["recon_probe_error"], rtol=1e-9)


def test_frechet_distance_on_known_inputs():
    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (200, 6)) @ rng.normal(0, 1, (6, 6))  # correlated features
    assert frechet_distance(features, features) == pytest.approx(0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5, 0, 3, 0])
    assert frechet_distance(features, features + shift) == pytest.approx(shift @ shift, rel=1e-9)
    # b = 2a: S_b = 4 S_a, so tr S_a + tr S_b - 2 tr (S_a S_b)^1/2 = tr S_a, plus |mu_a|^2
    mean = features.mean(0)
    expected = np.trace(np.cov(features, rowvar=False)) + mean @ mean
    assert frechet_distance(features, 2 * features) == pytest.approx(expected, rel=1e-9)
    # fewer samples than features (singular covariances) and one sample still work
    assert frechet_distance(features[:3], features[:3] + 1) == pytest.approx(6, rel=1e-9)
    assert frechet_distance(features[:1], features[1:2]) == pytest.approx(((features[0] - features[1]) ** 2).sum())
    with pytest.raises(ValueError, match="feature sets"):
        frechet_distance(features, features[:, :3])


def test_a_horizon_longer_than_the_episodes_names_the_longest(split):
    # 24-frame episodes, 2 context frames, the frame before the first for its action: 24 - 1 - 2 = 21
    assert longest_horizon(split, 2) == 21
    assert longest_horizon(split, 2, frame_stride=2) == 9
    for stride, longest in ((1, 21), (2, 9)):  # the same as the windows that exist
        WindowDataset(split, num_past=2, num_future=longest, source="frames", frame_stride=stride)
        with pytest.raises(ValueError):
            WindowDataset(split, num_past=2, num_future=longest + 1, source="frames", frame_stride=stride)
    tokenizer = TokenizerDouble("continuous", factor=4)
    with pytest.raises(ValueError, match="horizon 22 is longer than its episodes allow.*the longest possible "
                                         "horizon is 21"):
        evaluate(CopyLastModel(), tokenizer, split, horizon=22)
    assert evaluate(CopyLastModel(), tokenizer, split, horizon=21)["horizons"][-1] == 21


def test_a_probe_of_another_resolution_or_layout_is_a_clear_error(split):
    tokenizer = TokenizerDouble("continuous", factor=4)
    with pytest.raises(ValueError, match="the probe takes 64x64"):
        evaluate(CopyLastModel(), tokenizer, split, probe=StandInProbe(STATE_NAMES + OBJECT_NAMES, (64, 64)))
    with pytest.raises(ValueError, match="state_names"):
        evaluate(CopyLastModel(), tokenizer, split, probe=StandInProbe(["x"] + STATE_NAMES[1:]))
    with pytest.raises(ValueError, match="object_position_names"):
        evaluate(CopyLastModel(), tokenizer, split, probe=StandInProbe(STATE_NAMES + ["blue_x"]))


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory):
    from hwm_env.cli import main

    root = tmp_path_factory.mktemp("sim") / "data"
    assert main(["data", "sim", "--out", str(root), "--episodes", "4", "--steps", "30", "--val-fraction", "0.5",
                 "--seed", "3"]) == 0
    return root


@pytest.fixture
def shipped_probes(sim_data, monkeypatch):
    """`models.probe.load_probe` answering two stand-in names: one fits the sim data, one is 32 px."""
    train, val = HWMDataset(sim_data / "train"), HWMDataset(sim_data / "val")
    names = list(val.metadata["state_names"]) + val.object_position_names
    targets = np.concatenate([train.states, train.object_positions], 1)
    probes = {"probe-test": StandInProbe(names, (64, 64), targets.mean(0), targets.std(0) + 1e-3),
              "probe-32px": StandInProbe(names, (32, 32))}
    loaded = []

    def load_probe(name_or_path, device="cpu"):
        loaded.append((name_or_path, device))
        return probes[name_or_path]

    monkeypatch.setitem(sys.modules, "models.probe", types.SimpleNamespace(load_probe=load_probe))
    return names, loaded


@pytest.fixture(scope="module")
def flow_checkpoint(tmp_path_factory):
    from env_fixtures import build_flow_checkpoint

    return build_flow_checkpoint(tmp_path_factory.mktemp("checkpoints") / "flow")


def test_cli_eval_model_with_a_probe(sim_data, flow_checkpoint, shipped_probes, tmp_path, capsys):
    from hwm_env.cli import main

    names, loaded = shipped_probes
    checkpoint = flow_checkpoint
    out = tmp_path / "eval.json"
    arguments = ["eval", "model", "--checkpoint", str(checkpoint), "--data", str(sim_data), "--json", str(out),
                 "--episodes", "2", "--steps", "1", "--device", "cpu", "--batch-size", "2"]
    assert main(arguments + ["--horizon", "4", "--probe", "probe-test"]) == 0
    assert loaded == [("probe-test", "cpu")]
    results = json.loads(out.read_text())
    assert results["probe"] == "probe-test" and results["probe_targets"] == names
    for key in ("probe_error", "copy_last_probe_error", "mean_probe_error", "true_probe_error", "probe_fd",
                "copy_last_probe_fd", "psnr", "ssim", "sharpness"):
        assert len(results[key]) == 4 and all(np.isfinite(results[key])), key
    assert set(results["probe_error_by_group"]) == {"joints", "objects"}
    assert "probe FD" in capsys.readouterr().out
    # 30-frame episodes, 2 context frames: 27 is the longest horizon
    assert main(arguments + ["--horizon", "28", "--probe", "probe-test"]) == 2
    error = capsys.readouterr().err
    assert "hwm: error:" in error and "the longest possible horizon is 27" in error
    assert main(arguments + ["--horizon", "2", "--probe", "probe-32px"]) == 2
    error = capsys.readouterr().err
    assert "hwm: error:" in error and "the probe takes 32x32" in error
    # without --probe everything is as before
    assert main(arguments + ["--horizon", "2"]) == 0
    assert "probe_error" not in json.loads(out.read_text())


def test_model_quality_benchmark_plots_the_long_horizon(sim_data, flow_checkpoint, shipped_probes, tmp_path):
    pytest.importorskip("matplotlib")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "model_quality.py"
    spec = importlib.util.spec_from_file_location("model_quality", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    out, png = tmp_path / "quality.json", tmp_path / "plots" / "long.png"
    benchmark.main(["--checkpoint", str(flow_checkpoint), "--data", str(sim_data), "--steps", "1", "--horizon", "8",
                    "--episodes", "2", "--probe", "probe-test", "--plot", str(png), "--json", str(out)])
    run = json.loads(out.read_text())["runs"][0]
    assert len(run["probe_fd"]) == 8 and run["probe"] == "probe-test"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    table = out.with_suffix(".md").read_text()
    assert "probe err h1" in table and "mean h1-8 ± SE" in table
    # the mean over horizons is the mean of the per-window means, with its standard error over the windows
    windows = np.asarray(run["window_probe_error"]["model"]).mean(1)
    expected = f"{windows.mean():.3f} ± {windows.std(ddof=1) / np.sqrt(len(windows)):.3f}"
    assert expected in table
    with pytest.raises(SystemExit):  # a plot of the probe's scores without a probe
        benchmark.main(["--checkpoint", str(flow_checkpoint), "--data", str(sim_data), "--json", str(out),
                        "--plot", str(png)])
