"""Pre-encoding (`hwm data encode`), tokenizer evaluation and training commands on tiny data sets."""
import json

import numpy as np
import pytest
import torch

from hwm_env.cli import main
from models.tokenizers import AutoencoderConfig, ConvTokenizer, load_tokenizer
from models.data.hwm_format import HWMDataset, HWMWriter
from train.encode import encode_dataset, evaluate_tokenizer

TINY = dict(pixel_shuffle=2, channels=[16, 16, 32], res_blocks=1, bottleneck_blocks=0, norm_groups=4)
ACTION_NAMES = ["a0", "a1"]


def write_split(path, episodes, frames_per_episode=5, size=64, seed=0):
    rng = np.random.default_rng(seed)
    with HWMWriter(path, size, size, action_dim=2, fps=15, action_names=ACTION_NAMES, source="test") as writer:
        for _ in range(episodes):
            frames = rng.integers(0, 256, (frames_per_episode, size, size, 3), dtype=np.uint8)
            writer.add_episode(frames, rng.normal(size=(frames_per_episode, 2)).astype(np.float32))


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    write_split(root / "train", episodes=3, seed=0)
    write_split(root / "val", episodes=2, seed=1)
    return root


@pytest.fixture
def checkpoints(tmp_path):
    torch.manual_seed(0)
    paths = {}
    for quantizer in ("continuous", "fsq"):
        paths[quantizer] = ConvTokenizer(AutoencoderConfig(quantizer=quantizer, **TINY)).save(tmp_path / quantizer)
    return paths


def test_encode_dataset_writes_latents_beside_each_split(dataset, checkpoints):
    written = encode_dataset(dataset, checkpoints["continuous"], batch_size=4, device="cpu")
    assert [p.parent.name for p in written] == ["train", "val"]
    tokenizer = load_tokenizer(checkpoints["continuous"])
    for name, frames in (("train", 15), ("val", 10)):
        split = HWMDataset(dataset / name)
        assert split.latents.shape == (frames, 8, 8, 8) and split.latents.dtype == np.float16
        expected = tokenizer.encode(np.asarray(split.frames)[None])[0].numpy()
        np.testing.assert_allclose(split.latents.astype(np.float32), expected, atol=2e-3)
        info = split.latents_info
        assert info["kind"] == "latents" and info["temporal_compression"] == 1 and info["shape"] == [frames, 8, 8, 8]
        assert info["tokenizer"]["kind"] == "continuous" and info["tokenizer"]["checkpoint"]["family"] == "tokenizer"
        # the copied tokenizer is the one that made the latents
        copy = load_tokenizer(split.encoding_tokenizer_dir("latents"))
        assert torch.equal(copy.encode(np.asarray(split.frames[:2])[None]), tokenizer.encode(np.asarray(split.frames[:2])[None]))


def test_hwm_data_encode_tokens_for_one_split(dataset, checkpoints, capsys):
    code = main(["data", "encode", "--tokenizer", str(checkpoints["fsq"]), "--data", str(dataset),
                 "--split", "val", "--batch-size", "3", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    val, train = HWMDataset(dataset / "val"), HWMDataset(dataset / "train")
    assert train.tokens is None  # only the split asked for
    assert val.tokens.shape == (10, 8, 8) and val.tokens.dtype == np.int32
    expected = load_tokenizer(checkpoints["fsq"]).encode(np.asarray(val.frames)[None])[0].numpy()
    assert np.array_equal(val.tokens, expected)
    assert val.tokens_info["tokenizer"]["vocab_size"] == 1000


def test_encode_rejects_a_tokenizer_of_another_resolution(dataset, tmp_path, capsys):
    small = ConvTokenizer(AutoencoderConfig(image_size=[32, 32], **TINY)).save(tmp_path / "small")
    code = main(["data", "encode", "--tokenizer", str(small), "--data", str(dataset), "--device", "cpu"])
    assert code == 2
    assert "frames are 64x64 but the tokenizer expects 32x32" in capsys.readouterr().err
    assert HWMDataset(dataset / "train").latents is None  # nothing half-written
    assert main(["data", "encode", "--tokenizer", str(small), "--data", str(tmp_path / "nowhere")]) == 2


def test_eval_tokenizer_json_matches_the_metrics(dataset, checkpoints, tmp_path):
    from train.metrics import psnr, ssim

    out = tmp_path / "eval" / "tok.json"
    assert main(["eval", "tokenizer", "--checkpoint", str(checkpoints["continuous"]), "--data", str(dataset),
                 "--json", str(out), "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"psnr", "ssim", "frames"} and result["frames"] == 10  # the val split
    frames = torch.from_numpy(np.array(HWMDataset(dataset / "val").frames))
    reconstruction = load_tokenizer(checkpoints["continuous"]).decode(
        load_tokenizer(checkpoints["continuous"]).encode(frames[None]))[0]
    assert result["psnr"] == pytest.approx(float(psnr(reconstruction, frames).mean()), abs=1e-4)
    assert result["ssim"] == pytest.approx(float(ssim(reconstruction, frames).mean()), abs=1e-4)
    direct = evaluate_tokenizer(load_tokenizer(checkpoints["continuous"]), dataset / "val", max_frames=4)
    assert direct["frames"] == 4


def test_hwm_train_tokenizer_tiny_run_writes_a_loadable_checkpoint(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "tokenizer", "--data", str(dataset), "--quantizer", "fsq", "--config", "tiny",
                 "--out", str(out), "train.steps=3", "train.batch_size=4", "train.log_every=1"])
    assert code == 0, capsys.readouterr().err
    tokenizer = load_tokenizer(out / "final")
    assert tokenizer.kind == "discrete" and tokenizer.vocab_size == 1000
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["family"] == "tokenizer" and config["quantizer"] == "fsq" and config["image_size"] == [64, 64]
    result = json.loads((out / "eval.json").read_text())
    assert result["frames"] == 10 and np.isfinite(result["psnr"])
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in log if "loss" in record][:3] == [1, 2, 3]
    assert all("psnr" in record for record in log if "loss" in record)


def test_hwm_train_tokenizer_default_out_is_named_by_quantizer_and_preset(dataset, tmp_path, monkeypatch, capsys):
    """runs/tokenizer-<quantizer> for the default preset (the shipped names), -<preset> appended otherwise."""
    from train.tokenizer_training import tokenizer_config_name

    assert tokenizer_config_name("continuous", "default") == "continuous"
    assert tokenizer_config_name("fsq", "configs/small.yaml") == "fsq-small"
    monkeypatch.chdir(tmp_path)
    command = ["train", "tokenizer", "--data", str(dataset), "--quantizer", "fsq", "--config", "tiny",
               "train.batch_size=4", "train.val_every=0"]
    assert main([*command, "train.steps=1"]) == 0, capsys.readouterr().err
    assert (tmp_path / "runs" / "tokenizer-fsq-tiny" / "final" / "config.json").is_file()
    assert main([*command, "train.steps=2", "model.latent_channels=4"]) == 2
    assert "runs/tokenizer-fsq-tiny holds a run of a different config (model.latent_channels:" in capsys.readouterr().err


def test_hwm_train_tokenizer_bad_arguments_fail_clearly(dataset, tmp_path, capsys):
    assert main(["train", "tokenizer", "--data", str(dataset), "--quantizer", "continuous", "--config", "tiny",
                 "--out", str(tmp_path / "run"), "train.no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err
    assert main(["train", "tokenizer", "--data", str(tmp_path / "nowhere"), "--quantizer", "continuous",
                 "--config", "tiny"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "tokenizer", "--data", str(dataset), "--quantizer", "continuous", "--config", "huge"]) == 2
    assert "presets" in capsys.readouterr().err


def test_decoder_only_fine_tuning_keeps_the_latents_bit_identical(dataset, tmp_path, capsys):
    base = tmp_path / "base"
    assert main(["train", "tokenizer", "--data", str(dataset), "--quantizer", "continuous", "--config", "tiny",
                 "--out", str(base), "train.steps=2", "train.batch_size=4"]) == 0, capsys.readouterr().err
    out = tmp_path / "decoder"
    code = main(["train", "tokenizer", "--data", str(dataset), "--quantizer", "continuous", "--config", "tiny",
                 "--out", str(out), "train.steps=3", "train.batch_size=4", f"train.init_from={base / 'final'}",
                 "freeze_encoder=true", "loss.mse=1.0"])
    assert code == 0, capsys.readouterr().err
    before, after = load_tokenizer(base / "final"), load_tokenizer(out / "final")
    for name, tensor in before.encoder.state_dict().items():
        assert torch.equal(tensor, after.encoder.state_dict()[name]), name
    assert any(not torch.equal(tensor, after.decoder.state_dict()[name])
               for name, tensor in before.decoder.state_dict().items())
    frames = np.asarray(HWMDataset(dataset / "val").frames)[None]
    assert torch.equal(before.encode(frames), after.encode(frames))
    # a frozen random encoder is a mistake, not a setting
    assert main(["train", "tokenizer", "--data", str(dataset), "--quantizer", "continuous", "--config", "tiny",
                 "--out", str(tmp_path / "bad"), "freeze_encoder=true"]) == 2
    assert "train.init_from" in capsys.readouterr().err


def test_code_noise_moves_only_the_chosen_samples_off_the_fsq_grid():
    from models.tokenizers.autoencoder import AutoencoderConfig, ConvTokenizer
    from train.tokenizer_training import noisy_codes

    tokenizer = ConvTokenizer(AutoencoderConfig(quantizer="fsq", pixel_shuffle=2, channels=[16, 16, 32],
                                                res_blocks=1, bottleneck_blocks=0, norm_groups=4))
    images = torch.rand(400, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        grid = tokenizer.bottleneck(images)
        assert torch.allclose(noisy_codes(tokenizer, images, 0.6, 0.0), grid, atol=1e-6)
        torch.manual_seed(0)
        noisy = noisy_codes(tokenizer, images, 0.6, 0.5)
    moved = (noisy - grid).abs().flatten(1).amax(1) > 1e-4
    assert 0.4 < moved.float().mean() < 0.6  # about half the samples
    assert noisy.min() >= -1 and noisy.max() <= 1  # clamped to the digit range
    steps = (tokenizer.fsq.levels - 1).view(1, -1, 1, 1) / 2  # digits per code unit
    offsets = ((noisy - grid) * steps)[moved]
    inside = offsets[(grid[moved].abs() < 0.5)]  # away from the clamp at the ends of the range
    assert 0.5 < float(inside.std()) < 0.7


def test_code_noise_trains_an_fsq_decoder_and_is_refused_for_continuous(dataset, tmp_path, capsys):
    base = tmp_path / "base"
    assert main(["train", "tokenizer", "--data", str(dataset), "--quantizer", "fsq", "--config", "tiny",
                 "--out", str(base), "train.steps=2", "train.batch_size=4"]) == 0, capsys.readouterr().err
    out = tmp_path / "noisy"
    assert main(["train", "tokenizer", "--data", str(dataset), "--quantizer", "fsq", "--config", "tiny",
                 "--out", str(out), "train.steps=2", "train.batch_size=4", f"train.init_from={base / 'final'}",
                 "freeze_encoder=true", "code_noise=0.6"]) == 0, capsys.readouterr().err
    frames = np.asarray(HWMDataset(dataset / "val").frames)[None]
    assert torch.equal(load_tokenizer(base / "final").encode(frames), load_tokenizer(out / "final").encode(frames))
    assert main(["train", "tokenizer", "--data", str(dataset), "--quantizer", "continuous", "--config", "tiny",
                 "--out", str(tmp_path / "bad"), "code_noise=0.6"]) == 2
    assert "FSQ tokenizers" in capsys.readouterr().err
    assert main(["train", "tokenizer", "--data", str(dataset), "--quantizer", "fsq", "--config", "tiny",
                 "--out", str(tmp_path / "bad2"), "code_noise_fraction=2"]) == 2
    assert "code_noise_fraction" in capsys.readouterr().err
