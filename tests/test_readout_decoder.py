"""`hwm train readout-decoder`: a Masked-HWM's decoder fitted to its mean readouts, tokens unchanged."""
import json

import numpy as np
import pytest
import torch

from test_masked import write_token_dataset


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory):
    """A tiny factorised-head Masked-HWM trained 4 steps on a tiny token data set."""
    from hwm_env.cli import main

    root = tmp_path_factory.mktemp("readout")
    write_token_dataset(root / "data")
    assert main(["train", "masked", "--data", str(root / "data"), "--config", "tiny", "--out", str(root / "masked"),
                 "train.steps=4", "train.batch_size=4", "train.val_every=0", "train.save_every=4",
                 "model.factorized_head=true"]) == 0
    return root


@pytest.mark.parametrize("frame_stride", [1, 2])
def test_readouts_line_up_with_the_frames_they_predict(masked_run, frame_stride):
    from models.loading import load_world_model
    from models.data.hwm_format import HWMDataset
    from models.data.windows import WindowDataset
    from train.readout_decoder import mean_readouts

    model = load_world_model(masked_run / "masked" / "final")
    split = HWMDataset(masked_run / "data" / "val")
    digits, frames = mean_readouts(model, split, frame_stride, window_stride=2, batch_size=3,
                                   steps=1)  # 1 step: deterministic
    windows = WindowDataset(split, num_past=2, num_future=1, source="tokens", frame_stride=frame_stride)
    assert digits.shape == (len(range(0, len(windows), 2)), 4, 4, 2) and digits.dtype == np.float16
    for row, index in enumerate(range(0, len(windows), 2)):
        window = windows[index]
        assert frames[row] == window["start"] + 2 * frame_stride  # the future frame, frame_stride after the last past
        assert np.array_equal(np.asarray(split.tokens[frames[row]]), window["future_tokens"][0].numpy())
        expected = model.predict(window["past_tokens"][None], window["past_actions"][None],
                                 window["future_actions"][None], steps=1, readout="mean")[0, 0]
        torch.testing.assert_close(torch.from_numpy(digits[row].astype(np.float32)), expected, atol=2e-3, rtol=0)


def test_the_decoder_is_fitted_on_the_checkpoints_frame_stride(masked_run, tmp_path, monkeypatch):
    """A checkpoint trained with data.frame_stride 2 predicts the frame 2 rows after its last past frame:
    the readouts pair with those frames, not with the next row."""
    import shutil

    from models.data.hwm_format import HWMDataset
    from models.data.windows import WindowDataset
    from train import readout_decoder

    checkpoint = shutil.copytree(masked_run / "masked" / "final", tmp_path / "stride2")
    config = json.loads((checkpoint / "config.json").read_text())
    config["data"]["frame_stride"] = 2
    (checkpoint / "config.json").write_text(json.dumps(config))
    paired = {}

    class RecordingDataset(readout_decoder.ReadoutDataset):
        def __init__(self, split, digits, frame_index):
            super().__init__(split, digits, frame_index)
            paired[split.path.name] = frame_index

    monkeypatch.setattr(readout_decoder, "ReadoutDataset", RecordingDataset)
    readout_decoder.train_readout_decoder(checkpoint, masked_run / "data", tmp_path / "run", "tiny",
                                          ["train.steps=1", "train.val_every=0"])
    train_split = HWMDataset(masked_run / "data" / "train")
    windows = WindowDataset(train_split, num_past=2, num_future=1, source="tokens", frame_stride=2)
    expected = [windows[i]["start"] + 2 * 2 for i in range(len(windows))]  # tiny preset: window_stride 1
    assert paired["train"].tolist() == expected


def test_default_out_is_named_by_the_preset_and_holds_one_world_models_fit(masked_run, tmp_path, monkeypatch,
                                                                             capsys):
    """runs/readout-decoder-<config>; a fit for another world model there fails before any readout."""
    import shutil

    from hwm_env.cli import main

    data, final = masked_run / "data", masked_run / "masked" / "final"
    monkeypatch.chdir(tmp_path)
    command = ["train", "readout-decoder", "--data", str(data), "--config", "tiny", "train.steps=1", "train.val_every=0"]
    assert main([*command, "--checkpoint", str(final)]) == 0
    assert (tmp_path / "runs" / "readout-decoder-tiny" / "world_model" / "config.json").is_file()
    other = shutil.copytree(final, tmp_path / "other")
    capsys.readouterr()
    assert main([*command, "--checkpoint", str(other)]) == 2
    error = capsys.readouterr().err
    assert f"runs/readout-decoder-tiny holds a run of a different config (world_model: '{final.resolve()}' -> " \
           f"'{other.resolve()}')" in error and "readouts" not in error


def test_cli_fits_the_decoder_and_keeps_the_tokens(masked_run, capsys):
    from hwm_env.cli import main
    from models.checkpoint import load_checkpoint
    from models.tokenizers import load_tokenizer

    out = masked_run / "rd"
    assert main(["train", "readout-decoder", "--checkpoint", str(masked_run / "masked" / "final"),
                 "--data", str(masked_run / "data"), "--out", str(out), "--config", "tiny",
                 "train.steps=30", "train.lr=3e-3", "train.val_every=10"]) == 0
    assert "hwm eval model" in capsys.readouterr().out
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if "val_psnr_readout" in r]
    assert len(val) == 3 and val[-1]["val_psnr_readout"] > val[0]["val_psnr_readout"]  # the readout decodes nearer the frames
    assert all(np.isfinite(r["val_psnr_tokens"]) for r in val)

    # the world model is copied unchanged; the tokenizer's encoder is frozen, its decoder moved
    model_state, model_config = load_checkpoint(out / "world_model")
    old_state, old_config = load_checkpoint(masked_run / "masked" / "final")
    assert model_config == old_config and all(torch.equal(model_state[k], old_state[k]) for k in old_state)
    new, old = load_tokenizer(out / "world_model" / "tokenizer"), load_tokenizer(masked_run / "masked" / "final" / "tokenizer")
    assert all(torch.equal(a, b) for a, b in zip(new.encoder.state_dict().values(), old.encoder.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(new.decoder.state_dict().values(), old.decoder.state_dict().values()))
    frames = torch.from_numpy(np.array(np.memmap(masked_run / "data" / "val" / "frames.bin", np.uint8, "r")
                                       .reshape(-1, 1, 16, 16, 3)[:8]))
    assert torch.equal(new.encode(frames), old.encode(frames))


def test_bad_input_is_refused_with_the_reason(masked_run, tmp_path):
    from hwm_env.cli import main
    from train.readout_decoder import train_readout_decoder

    final = masked_run / "masked" / "final"
    with pytest.raises(ValueError, match="prediction_fraction must be in"):
        train_readout_decoder(final, masked_run / "data", tmp_path / "a", "tiny", ["prediction_fraction=1.5"])
    with pytest.raises(ValueError, match="window_stride"):
        train_readout_decoder(final, masked_run / "data", tmp_path / "b", "tiny", ["window_stride=0"])
    plain = tmp_path / "plain"
    assert main(["train", "masked", "--data", str(masked_run / "data"), "--config", "tiny", "--out", str(plain),
                 "train.steps=1", "train.batch_size=4", "train.val_every=0", "model.factorized_head=false"]) == 0
    with pytest.raises(ValueError, match="factorised head"):
        train_readout_decoder(plain / "final", masked_run / "data", tmp_path / "c", "tiny")
    write_token_dataset(tmp_path / "untokenized", with_tokens=False)
    with pytest.raises(ValueError, match="hwm data encode"):
        train_readout_decoder(final, tmp_path / "untokenized", tmp_path / "d", "tiny")
