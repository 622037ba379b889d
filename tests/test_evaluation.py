"""The evaluation protocol with real tiny objects: an oracle must score reconstruction level,
a copy-last model must equal the copy-last baseline, and actions must matter for the oracle."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.data.hwm_format import HWMDataset, HWMWriter, write_encoding
from models.data.windows import WindowDataset
from train.evaluation import evaluate_world_model, markdown_table, select_windows
from train.metrics import PSNR_CAP_DB

SIZE, ACTION_DIM, EPISODES, FRAMES = 32, 4, 5, 24


class TokenizerDouble(nn.Module):
    """Per-frame tokenizer with the common interface: average-pool by `factor` (lossy unless 1).

    continuous: latents (B, T, 3, h, w) in [-1, 1]; discrete: 4 levels per channel -> 64 tokens.
    """

    temporal_compression = 1

    def __init__(self, kind="continuous", factor=4):
        super().__init__()
        self.kind, self.spatial_compression = kind, factor
        self.image_size = (SIZE, SIZE)
        self.latent_channels = 3 if kind == "continuous" else None
        self.vocab_size = 64 if kind == "discrete" else None

    @property
    def latent_grid(self):
        return (SIZE // self.spatial_compression,) * 2

    def encode(self, frames):
        frames = torch.as_tensor(np.array(frames)) if isinstance(frames, np.ndarray) else frames
        batch, time = frames.shape[:2]
        images = frames.reshape(batch * time, SIZE, SIZE, 3).permute(0, 3, 1, 2).float()
        pooled = F.avg_pool2d(images, self.spatial_compression)  # (BT, 3, h, w) in [0, 255]
        if self.kind == "continuous":
            return (pooled / 127.5 - 1).view(batch, time, 3, *self.latent_grid)
        levels = (pooled / 255 * 3).round().long()  # (BT, 3, h, w) in 0..3
        tokens = levels[:, 0] + 4 * levels[:, 1] + 16 * levels[:, 2]
        return tokens.view(batch, time, *self.latent_grid)

    def decode(self, latents):
        batch, time = latents.shape[:2]
        if self.kind == "continuous":
            images = (latents.float().reshape(batch * time, 3, *self.latent_grid) + 1) * 127.5
        else:
            tokens = latents.reshape(batch * time, *self.latent_grid)
            images = torch.stack([tokens % 4, tokens // 4 % 4, tokens // 16], 1).float() * 85
        images = F.interpolate(images, scale_factor=self.spatial_compression, mode="nearest")
        frames = images.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return frames.reshape(batch, time, SIZE, SIZE, 3)

    def describe(self):
        return {"kind": self.kind, "temporal_compression": 1, "spatial_compression": self.spatial_compression,
                "image_size": [SIZE, SIZE]}


class WorldModelDouble(nn.Module):
    """The common world-model API; subclasses define `next_latents` (one latent frame per call)."""

    num_past, num_future, action_dim, config = 2, 1, ACTION_DIM, None

    def predict(self, past_latents, past_actions, future_actions, *, steps=None, cfg_scale=None,
                temperature=None, generator=None):
        assert future_actions.shape[1] == 1 and past_latents.shape[1] == self.num_past
        return self.next_latents(past_latents, future_actions[:, 0])[:, None]

    def rollout(self, past_latents, past_actions, future_actions, *, steps=None, cfg_scale=None,
                temperature=None, generator=None):
        predicted = []
        for step in range(future_actions.shape[1]):
            action = future_actions[:, step : step + 1]
            next_latent = self.predict(past_latents, past_actions, action, generator=generator)
            predicted.append(next_latent)
            past_latents = torch.cat([past_latents[:, 1:], next_latent], 1)
            past_actions = torch.cat([past_actions[:, 1:], action], 1)
        return torch.cat(predicted, 1)


class OracleModel(WorldModelDouble):
    """Knows the data: the action into frame f (actions[f-1]) looks up the encoding of frame f."""

    def __init__(self, tokenizer, split):
        super().__init__()
        self.table = {}
        for f in range(1, len(split)):
            if split.segment_idx[f] == split.segment_idx[f - 1]:
                key = np.asarray(split.actions[f - 1], dtype=np.float32).tobytes()
                self.table[key] = tokenizer.encode(np.asarray(split.frames[f])[None, None])[0, 0]

    def next_latents(self, past_latents, actions):
        return torch.stack([self.table[action.numpy().astype(np.float32).tobytes()] for action in actions])


class CopyLastModel(WorldModelDouble):
    def next_latents(self, past_latents, actions):
        return past_latents[:, -1]


def write_split(path, seed=0):
    """Episodes of a smooth random texture that the first two action dims shift around."""
    rng = np.random.default_rng(seed)
    with HWMWriter(path, SIZE, SIZE, action_dim=ACTION_DIM, fps=10, action_names=[f"a{i}" for i in range(4)],
                   source="test") as writer:
        for _ in range(EPISODES):
            coarse = torch.from_numpy(rng.uniform(0, 255, (1, 3, 6, 6))).float()
            texture = F.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
            texture = texture.clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
            actions = rng.uniform(-1, 1, (FRAMES, ACTION_DIM)).astype(np.float32)
            position, frames = np.zeros(2, dtype=int), []
            for t in range(FRAMES):
                frames.append(np.roll(texture, tuple(position), axis=(0, 1)))
                position = position + np.round(4 * actions[t, :2]).astype(int)  # action t drives t -> t+1
            writer.add_episode(np.stack(frames), actions)
    return HWMDataset(path)


def pre_encode(split, tokenizer):
    kind = "latents" if tokenizer.kind == "continuous" else "tokens"
    encoded = tokenizer.encode(np.asarray(split.frames)[:, None])[:, 0]  # (N, ...) one frame at a time
    write_encoding(split.path, kind, encoded.numpy(), tokenizer_config=tokenizer.describe())
    return HWMDataset(split.path)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("evaluation") / "val"
    write_split(path)
    return path


def evaluate(model, tokenizer, split, horizon=4, **kwargs):
    kwargs.setdefault("episodes", 8)
    return evaluate_world_model(model, tokenizer, split, horizon, batch_size=2, progress=False, **kwargs)


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_oracle_scores_reconstruction_level(data_dir, tmp_path, kind):
    tokenizer = TokenizerDouble(kind, factor=4)
    split = pre_encode(write_split(tmp_path / "val"), tokenizer)
    results = evaluate(OracleModel(tokenizer, split), tokenizer, split, horizon=4)
    assert results["context_source"] == "pre-encoded"
    assert results["episodes"] == EPISODES and results["horizons"] == [1, 2, 3, 4]
    assert results["psnr"] == pytest.approx(results["recon_psnr"], abs=1e-9)
    assert results["ssim"] == pytest.approx(results["recon_ssim"], abs=1e-9)
    assert results["sharpness"] == pytest.approx(results["recon_sharpness"], abs=1e-9)
    assert results["recon_psnr"][0] < PSNR_CAP_DB  # the pooling tokenizer is lossy
    # the scenes move, so knowing the future beats copying the last frame ...
    assert all(p > c + 1 for p, c in zip(results["psnr"], results["copy_last_psnr"]))
    # ... and the actions carry that knowledge: another episode's actions score lower
    assert all(d > 1 for d in results["delta_psnr"])
    assert all(0 < s < 1.2 for s in results["sharpness"])


def test_copy_last_model_equals_copy_last_baseline(data_dir):
    tokenizer = TokenizerDouble("continuous", factor=1)  # lossless: decode(encode(x)) == x
    split = HWMDataset(data_dir)
    results = evaluate(CopyLastModel(), tokenizer, split, horizon=3)
    assert results["context_source"] == "tokenizer"
    assert results["psnr"] == results["copy_last_psnr"]
    assert results["ssim"] == results["copy_last_ssim"]
    assert results["recon_psnr"] == [PSNR_CAP_DB] * 3
    assert results["delta_psnr"] == [0.0] * 3  # it ignores the actions
    assert results["copy_last_psnr"][0] > results["copy_last_psnr"][2]  # the scene drifts away


def test_pre_encoded_context_matches_encoding_on_the_fly(tmp_path):
    tokenizer = TokenizerDouble("continuous", factor=1)
    split = write_split(tmp_path / "val")
    on_the_fly = evaluate(CopyLastModel(), tokenizer, split, horizon=2, seed=3)
    encoded = evaluate(CopyLastModel(), tokenizer, pre_encode(split, tokenizer), horizon=2, seed=3)
    assert (on_the_fly["context_source"], encoded["context_source"]) == ("tokenizer", "pre-encoded")
    for key in ("psnr", "ssim", "copy_last_psnr", "recon_psnr", "windows"):
        assert encoded[key] == on_the_fly[key]
    # pre-encoded data of another shape (another tokenizer) is not used
    other = evaluate(CopyLastModel(), TokenizerDouble("continuous", factor=2), HWMDataset(split.path), horizon=2)
    assert other["context_source"] == "tokenizer"


def test_window_choice_is_seeded_and_one_per_episode(data_dir):
    windows = WindowDataset(HWMDataset(data_dir), num_past=2, num_future=4, source="frames")
    first = select_windows(windows, 3, seed=0)
    assert first == select_windows(windows, 3, seed=0)
    assert first != select_windows(windows, 3, seed=1)
    segments = [windows[i]["segment"] for i in first]
    assert len(set(segments)) == 3 and segments == sorted(segments)
    assert len(select_windows(windows, 100, seed=0)) == EPISODES


def test_results_are_json_and_render_as_markdown(data_dir):
    results = evaluate(CopyLastModel(), TokenizerDouble("continuous", 4), HWMDataset(data_dir), horizon=2, episodes=1)
    assert results["episodes"] == 1 and results["delta_psnr"] == [None, None]  # needs two episodes
    json.loads(json.dumps(results, allow_nan=False))
    table = markdown_table(results)
    assert "| h | PSNR | SSIM | sharpness | copy-last PSNR" in table
    assert table.count("\n| 1 |") == 1 and table.count("\n| 2 |") == 1 and "n/a" in table


def test_bad_arguments_raise_clear_errors(data_dir):
    split, tokenizer = HWMDataset(data_dir), TokenizerDouble("continuous", 4)
    with pytest.raises(ValueError, match="horizon"):
        evaluate(CopyLastModel(), tokenizer, split, horizon=0)
    with pytest.raises(ValueError, match="no window"):
        evaluate(CopyLastModel(), tokenizer, split, horizon=FRAMES)
    video_tokenizer = TokenizerDouble("continuous", 4)
    video_tokenizer.temporal_compression = 4
    with pytest.raises(ValueError, match="temporal_compression"):
        evaluate(CopyLastModel(), video_tokenizer, split)
    small = TokenizerDouble("continuous", 4)
    small.image_size = (16, 16)
    with pytest.raises(ValueError, match="16x16"):
        evaluate(CopyLastModel(), small, split)
    wide = CopyLastModel()
    wide.action_dim = 25
    with pytest.raises(ValueError, match="action_dim=25"):
        evaluate(wide, tokenizer, split)
    with pytest.raises(ValueError, match="readout is a Masked-HWM option"):
        evaluate(CopyLastModel(), tokenizer, split, readout="mean")


def test_cli_eval_model_end_to_end(data_dir, tmp_path):
    """A real (untrained, tiny) Masked-HWM + built-in FSQ tokenizer checkpoint through `hwm eval model`."""
    masked = pytest.importorskip("models.masked")
    tokenizers = pytest.importorskip("models.tokenizers")
    autoencoder = pytest.importorskip("models.tokenizers.autoencoder")
    if not hasattr(tokenizers, "load_tokenizer") or not hasattr(masked, "MaskedHWM"):
        pytest.skip("tokenizer loading / Masked-HWM not available yet")
    from hwm_env.cli import main
    from models.checkpoint import save_checkpoint

    tokenizer = autoencoder.ConvTokenizer(autoencoder.AutoencoderConfig(
        image_size=[SIZE, SIZE], quantizer="fsq", fsq_levels=[4, 4], channels=[8, 8], norm_groups=0,
        bottleneck_blocks=0))
    tokenizer_dir = tokenizer.save(tmp_path / "tokenizer")
    config = masked.MaskedConfig(vocab_size=16, fsq_levels=[4, 4], factorized_head=True,
                                 token_grid=list(tokenizer.latent_grid), action_dim=ACTION_DIM,
                                 width=32, depth=1, num_heads=2, unshared_blocks=1, num_sampling_steps=2)
    model = masked.MaskedHWM(config)
    checkpoint = save_checkpoint(tmp_path / "masked", model.state_dict(), model.checkpoint_config(),
                                 {"tokenizer": tokenizer_dir})
    out = tmp_path / "results" / "eval.json"
    code = main(["eval", "model", "--checkpoint", str(checkpoint), "--data", str(data_dir), "--horizon", "3",
                 "--json", str(out), "--episodes", "3", "--steps", "1", "--device", "cpu"])
    assert code == 0
    results = json.loads(out.read_text())
    assert results["horizons"] == [1, 2, 3] and results["episodes"] == 3
    for key in ("psnr", "ssim", "sharpness", "copy_last_psnr", "recon_psnr", "delta_psnr"):
        assert len(results[key]) == 3 and all(np.isfinite(results[key])), key
    # the mean readout decodes expected FSQ digits through the same tokenizer
    mean_out = tmp_path / "results" / "eval_mean.json"
    code = main(["eval", "model", "--checkpoint", str(checkpoint), "--data", str(data_dir), "--horizon", "2",
                 "--json", str(mean_out), "--episodes", "3", "--steps", "1", "--readout", "mean", "--device", "cpu"])
    assert code == 0
    mean_results = json.loads(mean_out.read_text())
    assert mean_results["readout"] == "mean" and all(np.isfinite(mean_results["psnr"]))
    assert mean_results["recon_psnr"] == pytest.approx(results["recon_psnr"][:2])
    assert results["readout"] == "tokens"  # the checkpoint's default
    # a checkpoint whose model.readout is "mean" is evaluated that way unless told otherwise
    shown_mean = save_checkpoint(tmp_path / "masked-mean", model.state_dict(),
                                 {**model.checkpoint_config(), "model": {**model.checkpoint_config()["model"],
                                                                         "readout": "mean"}},
                                 {"tokenizer": tokenizer_dir})
    default_out = tmp_path / "results" / "eval_default.json"
    assert main(["eval", "model", "--checkpoint", str(shown_mean), "--data", str(data_dir), "--horizon", "2",
                 "--json", str(default_out), "--episodes", "3", "--steps", "1", "--device", "cpu"]) == 0
    default_results = json.loads(default_out.read_text())
    assert default_results["readout"] == "mean" and default_results["psnr"] == pytest.approx(mean_results["psnr"])
    # Masked-HWM has no guidance: the CLI error names the argument
    code = main(["eval", "model", "--checkpoint", str(checkpoint), "--data", str(data_dir), "--horizon", "1",
                 "--json", str(out), "--cfg-scale", "2", "--device", "cpu"])
    assert code == 2


def test_per_window_psnr_gives_the_means_and_the_gap_statistics(data_dir):
    tokenizer = TokenizerDouble("continuous", factor=4)
    split = HWMDataset(data_dir)
    results = evaluate(OracleModel(tokenizer, split), tokenizer, split, horizon=3)
    windows = {key: np.array(value) for key, value in results["window_psnr"].items()}
    assert windows["psnr"].shape == (EPISODES, 3)
    for key in ("psnr", "copy_last_psnr", "recon_psnr"):
        np.testing.assert_allclose(windows[key].mean(0), results[key], atol=1e-9)
    gap = windows["psnr"] - windows["copy_last_psnr"]
    np.testing.assert_allclose(results["gap_stderr"], gap.std(0, ddof=1) / np.sqrt(EPISODES), atol=1e-9)
    np.testing.assert_allclose(results["win_fraction"], (gap > 0).mean(0))
    assert 0 < results["win_fraction"][0] <= 1
    single = evaluate(CopyLastModel(), tokenizer, split, horizon=2, episodes=1)
    assert single["gap_stderr"] == [None, None]  # one window has no spread
    assert all(fraction in (0.0, 1.0) for fraction in single["win_fraction"])


def test_cli_eval_model_reads_the_checkpoints_frame_stride(data_dir, tmp_path):
    """A checkpoint trained with data.frame_stride 2 is scored on windows 2 frames apart (horizon = 2 frames)."""
    from hwm_env.cli import main
    from models.checkpoint import save_checkpoint
    from models.masked import MaskedConfig, MaskedHWM
    from models.tokenizers.autoencoder import AutoencoderConfig, ConvTokenizer

    tokenizer = ConvTokenizer(AutoencoderConfig(image_size=[SIZE, SIZE], quantizer="fsq", fsq_levels=[4, 4],
                                                channels=[8, 8], norm_groups=0, bottleneck_blocks=0))
    tokenizer_dir = tokenizer.save(tmp_path / "tokenizer")
    model = MaskedHWM(MaskedConfig(vocab_size=16, fsq_levels=[4, 4], token_grid=list(tokenizer.latent_grid),
                                   action_dim=ACTION_DIM, width=32, depth=1, num_heads=2, unshared_blocks=1))
    scores = {}
    for stride in (1, 2):
        checkpoint = save_checkpoint(tmp_path / f"masked-stride{stride}", model.state_dict(),
                                     model.checkpoint_config(data={"frame_stride": stride}), {"tokenizer": tokenizer_dir})
        out = tmp_path / f"eval{stride}.json"
        assert main(["eval", "model", "--checkpoint", str(checkpoint), "--data", str(data_dir), "--horizon", "2",
                     "--json", str(out), "--episodes", "3", "--steps", "1", "--device", "cpu"]) == 0
        scores[stride] = json.loads(out.read_text())
        assert scores[stride]["frame_stride"] == stride
    # copying the last frame 2 frames ahead is a different (here worse) guess than 1 frame ahead
    assert scores[2]["copy_last_psnr"][0] != scores[1]["copy_last_psnr"][0]
