"""Masked-HWM's pixel loss: the decoded one-step mean readout against the frame that followed."""
import json

import numpy as np
import pytest
import torch

from test_masked import write_token_dataset

TINY = ["--config", "tiny", "train.batch_size=4", "model.factorized_head=true"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pixel")
    torch.manual_seed(0)  # module fixtures run before the per-test seeding: without this the data
    np.random.seed(0)  # depended on which tests ran first
    write_token_dataset(root / "data")
    return root / "data"


def tiny_model():
    from models.masked import MaskedConfig, MaskedHWM

    return MaskedHWM(MaskedConfig(vocab_size=16, token_grid=[4, 4], fsq_levels=[4, 4], factorized_head=True,
                                  num_past=2, num_future=1, action_dim=2, width=32, depth=2, num_heads=2))


@pytest.mark.parametrize("frame_stride", [1, 2])
def test_windows_carry_the_frames_their_future_tokens_encode(data, frame_stride):
    from models.data.hwm_format import HWMDataset
    from models.data.windows import WindowDataset
    from train.pixel_loss import WindowsWithFrames

    split = HWMDataset(data / "train")
    windows = WindowsWithFrames(WindowDataset(split, 2, 1, source="tokens", frame_stride=frame_stride))
    for index in range(0, len(windows), 5):
        item = windows[index]
        assert item["future_frames"].shape == (1, 16, 16, 3) and item["future_frames"].dtype == torch.uint8
        row = item["start"] + 2 * frame_stride
        assert np.array_equal(item["future_frames"][0].numpy(), np.asarray(split.frames[row]))
        assert np.array_equal(item["future_tokens"][0].numpy(), np.asarray(split.tokens[row]))
    with pytest.raises(ValueError, match="pre-encoded tokens"):
        WindowsWithFrames(WindowDataset(split, 2, 1, source="frames"))


def test_the_loss_decodes_what_the_mean_readout_evaluation_decodes(data):
    from models.tokenizers.base import unit_to_frames
    from models.data.hwm_format import HWMDataset
    from models.data.windows import WindowDataset
    from train.pixel_loss import decoded_readout, load_pixel_tokenizer

    torch.manual_seed(0)
    model, tokenizer = tiny_model().eval(), load_pixel_tokenizer("", data / "train" / "tokens_tokenizer", [4, 4])
    windows = WindowDataset(HWMDataset(data / "val"), 2, 1, source="tokens")
    batch = {k: torch.stack([windows[i][k] for i in range(6)]) for k in ("past_tokens", "past_actions",
                                                                         "future_tokens", "future_actions")}
    with torch.no_grad():
        ours = unit_to_frames(decoded_readout(model, tokenizer, batch)).int()
        digits = model.predict(batch["past_tokens"], batch["past_actions"], batch["future_actions"], steps=1,
                                readout="mean")
        evaluated = tokenizer.decode_digits(digits)[:, 0].int()
    assert (ours - evaluated).abs().max() <= 1  # the same picture, up to rounding


def test_pixel_loss_moves_the_readout_towards_the_frame_and_leaves_the_decoder(data):
    from models.masked import masked_objective
    from models.tokenizers.base import frames_to_unit
    from models.data.hwm_format import HWMDataset
    from models.data.windows import WindowDataset
    from train.pixel_loss import WindowsWithFrames, decoded_readout, load_pixel_tokenizer, pixel_objective

    tokenizer = load_pixel_tokenizer("", data / "train" / "tokens_tokenizer", [4, 4])
    decoder_before = {k: v.clone() for k, v in tokenizer.decoder.state_dict().items()}
    windows = WindowsWithFrames(WindowDataset(HWMDataset(data / "train"), 2, 1, source="tokens"))
    batch = {k: torch.stack([windows[i][k] for i in range(8)]) for k in ("past_tokens", "past_actions",
                                                                         "future_tokens", "future_actions",
                                                                         "future_frames")}
    images = frames_to_unit(batch["future_frames"].flatten(0, 1))

    def readout_mse_after(objective):
        torch.manual_seed(0)
        model = tiny_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(40):
            loss, metrics = objective(model.train(), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return float((decoded_readout(model.eval(), tokenizer, batch) - images).square().mean()), metrics

    torch.manual_seed(0)
    with torch.no_grad():
        before = float((decoded_readout(tiny_model().eval(), tokenizer, batch) - images).square().mean())
    with_pixels, metrics = readout_mse_after(pixel_objective(tokenizer, 100.0))
    cross_entropy_only, _ = readout_mse_after(masked_objective)
    assert {"cross_entropy", "readout_psnr", "masked_accuracy"} <= set(metrics)
    assert with_pixels < 0.95 * before and with_pixels < 0.95 * cross_entropy_only  # 0.41 vs 0.45 and 0.45
    assert all(torch.equal(v, decoder_before[k]) for k, v in tokenizer.decoder.state_dict().items())
    assert not any(p.requires_grad for p in tokenizer.parameters())


def test_cli_trains_with_the_pixel_loss_and_ships_the_decoder_it_was_taught_for(data, tmp_path):
    from hwm_env.cli import main
    from models.loading import load_world_model_and_tokenizer
    from models.tokenizers import load_tokenizer

    fitted = load_tokenizer(data / "train" / "tokens_tokenizer")
    with torch.no_grad():  # a decoder fitted with the encoder frozen: same encoder, other decoder
        for param in fitted.decoder.parameters():
            param.mul_(0.9)
    fitted.save(tmp_path / "fitted")
    out = tmp_path / "run"
    assert main(["train", "masked", "--data", str(data), "--out", str(out), *TINY, "train.steps=4",
                 "train.val_every=2", "train.save_every=4", "pixel.weight=50",
                 f"pixel.tokenizer={tmp_path / 'fitted'}"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["val_readout_psnr"]) for r in records if "val_readout_psnr" in r)
    assert any("readout_psnr" in r for r in records)
    _, model, tokenizer = load_world_model_and_tokenizer(out / "final")
    assert json.loads((out / "final" / "config.json").read_text())["pixel"]["weight"] == 50
    shipped = tokenizer.decoder.state_dict()
    assert all(torch.equal(shipped[k], v) for k, v in fitted.decoder.state_dict().items())


def test_bad_pixel_settings_are_refused_with_the_reason(data, tmp_path, capsys):
    from hwm_env.cli import main
    from models.tokenizers import AutoencoderConfig, ConvTokenizer
    from train.pixel_loss import pixel_objective

    def refused(*overrides):
        code = main(["train", "masked", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "train.steps=1",
                     *overrides])
        return code == 2 and capsys.readouterr().err

    def fsq_tokenizer(levels):
        return ConvTokenizer(AutoencoderConfig(image_size=[16, 16], quantizer="fsq", fsq_levels=levels,
                                               channels=[8, 8], res_blocks=1, bottleneck_blocks=0, norm_groups=4))

    assert "factorised head" in refused("pixel.weight=1", "model.factorized_head=false")
    assert "pixel.weight must be > 0" in refused("pixel.weight=-1")
    fsq_tokenizer([4, 4]).save(tmp_path / "other")  # a fresh encoder: its tokens are not the data's
    assert "its encoder is not the one that encoded the data" in refused("pixel.weight=1",
                                                                        f"pixel.tokenizer={tmp_path / 'other'}")
    fsq_tokenizer([8, 2]).save(tmp_path / "levels")
    assert "FSQ levels" in refused("pixel.weight=1", f"pixel.tokenizer={tmp_path / 'levels'}")
    with pytest.raises(ValueError, match="pixel.weight must be > 0"):
        pixel_objective(fsq_tokenizer([4, 4]), 0.0)
    assert not (tmp_path / "run" / "final").exists()
