"""`hwm data encode` with video tokenizers (Cosmos CV/DV stand-ins) on 1X raw and hwm-v1 splits,
resuming, chunked latent windows, and `hwm train flow` on a 1X raw download end to end."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from onex_fixtures import write_onex_split, write_raw_root
from test_tokenizers import (
    TINY, DiscreteVideoDecoder, DiscreteVideoEncoder, PoolingVideoEncoder, RepeatingVideoDecoder, write_cosmos_folder,
)

from hwm_env.cli import main
from models.data.hwm_format import HWMDataset, HWMWriter, latent_frame_ranges, read_encoding
from models.data.windows import WindowDataset
from models.tokenizers import load_tokenizer
from train.encode import encode_dataset, encode_split

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

# write_raw_root: shard 0 = 70 frames, segments [0, 40) + [40, 70); shard 1 = 45 frames; val = 23 frames.
# 1X's grid: shard 0 chunks at 0, 17, 34, 51 (34..50 crosses frame 40), shard 1 at 0, 17; val at 0.
TRAIN_RUNS = [[0, 0, 2], [0, 51, 1], [1, 0, 2]]
LATENT_FRAMES = [[0, 1], [1, 9], [9, 17]]


@pytest.fixture(scope="module")
def cosmos(tmp_path_factory):
    """Scripted stand-ins with the Cosmos JIT call signatures: CV8x8x8, CV4x8x8, DV8x8x8."""
    root = tmp_path_factory.mktemp("cosmos")
    return {
        "cv8": write_cosmos_folder(root / "Cosmos-0.1-Tokenizer-CV8x8x8", PoolingVideoEncoder(8, 8),
                                   RepeatingVideoDecoder(8, 8)),
        "cv4": write_cosmos_folder(root / "Cosmos-0.1-Tokenizer-CV4x8x8", PoolingVideoEncoder(4, 8),
                                   RepeatingVideoDecoder(4, 8)),
        "dv8": write_cosmos_folder(root / "Cosmos-0.1-Tokenizer-DV8x8x8", DiscreteVideoEncoder(8, 8),
                                   DiscreteVideoDecoder(8, 8)),
    }


@pytest.fixture
def raw_root(tmp_path):
    root = tmp_path / "worldmodel_raw"
    return root, write_raw_root(root)


def expected_rgb(shards, first, stop) -> np.ndarray:
    """(N', 2) mean red, green in [-1, 1] of the fixture frames each latent covers (frame f: red 8 (f % 30))."""
    rows = []
    for a, b in zip(first, stop):
        frames = np.arange(a, b)
        rows.append([np.mean(8 * (frames % 30)), np.mean(8 * (frames // 30))])
    return np.asarray(rows) / 127.5 - 1


def assert_scored_on_pixels(checkpoint, split, tmp_path, capsys):
    """`hwm eval model` decodes the checkpoint's predictions inside their chunks against the raw frames they cover."""
    scores = tmp_path / "eval.json"
    assert main(["eval", "model", "--checkpoint", str(checkpoint), "--data", str(split), "--horizon", "1",
                 "--episodes", "4", "--json", str(scores), "--device", "cpu"]) == 0, capsys.readouterr().err
    results = json.loads(scores.read_text())
    assert results["frames_per_horizon"][0] > 0 and np.isfinite(results["psnr"] + results["recon_psnr"]).all()


def test_cv_latents_of_a_raw_split_cover_the_frames_the_json_names(raw_root, cosmos, capsys):
    root, _ = raw_root
    written = encode_dataset(root, cosmos["cv8"], batch_size=40, device="cpu", image_size=32)
    assert [p.parent.name for p in written] == ["train_v2.0_raw", "val_v2.0_raw"]
    latents, info = read_encoding(root / "train_v2.0_raw", "latents")
    assert latents.shape == (15, 16, 4, 4) and latents.dtype == np.float16  # 5 chunks x 3 latents, 32 px / 8
    assert info["temporal_compression"] == 8 and info["chunk_frames"] == 17 and info["latents_per_chunk"] == 3
    assert info["latent_frames"] == LATENT_FRAMES and info["chunk_runs"] == TRAIN_RUNS
    assert info["frames"] == {"format": "1x-v2.0-raw", "image_size": [32, 32], "source_size": [32, 32]}
    assert info["tokenizer"]["kind"] == "continuous" and info["tokenizer"]["type"] == "cosmos"
    shards, first, stop = latent_frame_ranges(info)
    assert shards.tolist()[:3] == [0, 0, 0] and first.tolist()[:6] == [0, 1, 9, 17, 18, 26]
    assert (first[6], stop[8]) == (51, 68) and shards[-1] == 1 and stop[-1] == 34
    # the stand-in's channels 0-1 are the mean red, green of the frames a latent covers
    pooled = latents[:, :2].astype(np.float32).mean(axis=(2, 3))
    np.testing.assert_allclose(pooled, expected_rgb(shards, first, stop), atol=0.04)
    val_latents, val_info = read_encoding(root / "val_v2.0_raw", "latents")
    assert val_latents.shape == (3, 16, 4, 4) and val_info["chunk_runs"] == [[0, 0, 1]]  # 23 = 17 + a partial 6
    # the copy beside the latents loads at the resolution it encoded (autoencoder.jit would be left out)
    copy = load_tokenizer(root / "train_v2.0_raw" / "latents_tokenizer")
    assert copy.image_size == (32, 32) and copy.temporal_compression == 8
    assert not [p for p in (root / "train_v2.0_raw").iterdir() if p.name.startswith(".")]  # no partial files


def test_dv_tokens_of_a_raw_split_and_their_windows(raw_root, cosmos):
    root, written = raw_root
    assert main(["data", "encode", "--tokenizer", str(cosmos["dv8"]), "--data", str(root), "--split", "train_v2.0_raw",
                 "--image-size", "16", "--device", "cpu"]) == 0
    tokens, info = read_encoding(root / "train_v2.0_raw", "tokens")
    assert tokens.shape == (15, 2, 2) and tokens.dtype == np.int32 and info["tokenizer"]["vocab_size"] == 64000
    assert not (root / "val_v2.0_raw" / "tokens.json").exists()
    windows = WindowDataset(root / "train_v2.0_raw", source="tokens")  # mean pooling: one action per latent
    assert len(windows) == 5
    item = windows[2]  # chunk 3 of shard 0: frames 51..67
    assert (item["shard"], item["start"]) == (0, 51) and item["past_tokens"].shape == (2, 2, 2)
    states = written["states"][0]
    np.testing.assert_allclose(item["past_actions"][1].numpy(), states[52:60].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(item["future_actions"][0].numpy(), states[60:68].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_frames_pooling_gives_the_paper_window_on_chunked_latents(tmp_path, cosmos):
    """hwm-v1 + CV8x8x8: chunks start one frame into each episode; 9 past + 8 future per-frame actions."""
    path = tmp_path / "data" / "train"
    rng = np.random.default_rng(0)
    with HWMWriter(path, 64, 64, action_dim=2, fps=30, action_names=["index", "episode"]) as writer:
        for episode, (first, length) in enumerate([(0, 40), (40, 20)]):
            index = np.arange(first, first + length)
            frames = rng.integers(0, 256, (length, 64, 64, 3), dtype=np.uint8)
            writer.add_episode(frames, np.stack([index, np.full(length, episode)], axis=1).astype(np.float32))
    encode_dataset(tmp_path / "data", cosmos["cv8"], batch_size=17, device="cpu", image_size=32)  # 64 -> 32 px
    split = HWMDataset(path)
    assert split.latents.shape == (9, 16, 4, 4)
    assert split.latents_info["chunk_runs"] == [[0, 1, 2], [0, 41, 1]]
    assert split.latents_info["frames"]["source_size"] == [64, 64]
    windows = WindowDataset(split, num_past=2, num_future=1, source="latents", action_pooling="frames")
    assert len(windows) == 3
    for index, start in enumerate([1, 18, 41]):
        item = windows[index]
        assert item["start"] == start and item["past_latents"].shape == (2, 16, 4, 4)
        # the action into frame f is actions[f - 1]: frames start..start+8, then start+9..start+16
        assert item["past_actions"][:, 0].tolist() == list(range(start - 1, start + 8))
        assert item["future_actions"][:, 0].tolist() == list(range(start + 8, start + 16))
        np.testing.assert_array_equal(item["past_latents"].numpy(), split.latents[3 * index : 3 * index + 2])
    # 1 past + 1 future latent: windows at a chunk's first latent only, so every window has 1 + 8 actions
    short = WindowDataset(split, num_past=1, num_future=1, source="latents", action_pooling="frames")
    assert len(short) == 3 and short[0]["past_actions"].shape == (1, 2) and short[0]["future_actions"].shape == (8, 2)
    assert len(WindowDataset(split, num_past=1, num_future=1, source="latents")) == 6  # mean: any start in a chunk
    with pytest.raises(ValueError, match="fixed clock"):
        WindowDataset(split, source="latents", frame_stride=2)


def test_an_interrupted_encode_continues_where_it_stopped(raw_root, cosmos, tmp_path, monkeypatch, capsys):
    root, _ = raw_root
    split_dir = root / "train_v2.0_raw"
    reference = tmp_path / "reference"
    shutil.copytree(split_dir, reference)
    tokenizer = load_tokenizer(cosmos["cv8"], image_size=(32, 32))
    encode_split(reference, tokenizer, cosmos["cv8"], batch_size=17)  # uninterrupted, one chunk per call
    encode = tokenizer.encode
    calls = []

    def counting(frames, fail_at=None):
        calls.append(len(frames))
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        return encode(frames)

    monkeypatch.setattr(tokenizer, "encode", lambda frames: counting(frames, fail_at=3))
    with pytest.raises(KeyboardInterrupt):
        encode_split(split_dir, tokenizer, cosmos["cv8"], batch_size=17)
    assert (split_dir / ".latents.bin.partial").stat().st_size == 2 * 3 * 16 * 4 * 4 * 2  # 2 chunks, float16
    assert not (split_dir / "latents.json").exists()
    calls.clear()
    monkeypatch.setattr(tokenizer, "encode", counting)
    encode_split(split_dir, tokenizer, cosmos["cv8"], batch_size=17)
    assert len(calls) == 3 and "resuming at chunk 2 of 5" in capsys.readouterr().out
    assert (split_dir / "latents.bin").read_bytes() == (reference / "latents.bin").read_bytes()
    assert read_encoding(split_dir, "latents")[1] == read_encoding(reference, "latents")[1]
    calls.clear()
    encode_split(split_dir, tokenizer, cosmos["cv8"], batch_size=17)  # nothing left to do
    assert calls == [] and "already encoded" in capsys.readouterr().out
    # a partial encoding of other data is not continued
    monkeypatch.setattr(tokenizer, "encode", lambda frames: counting(frames, fail_at=2))
    (split_dir / "latents.json").unlink()
    with pytest.raises(KeyboardInterrupt):
        encode_split(split_dir, tokenizer, cosmos["cv8"], batch_size=17)
    os.utime(split_dir / "videos" / "video_1.mp4", ns=(1, 1))
    calls.clear()
    monkeypatch.setattr(tokenizer, "encode", counting)
    encode_split(split_dir, tokenizer, cosmos["cv8"], batch_size=34)
    assert calls == [2, 2, 1]


def test_encode_raw_then_train_flow_end_to_end(raw_root, cosmos, tmp_path, capsys):
    from models.loading import load_world_model
    from train.commands.flow import load_flow_config

    root, _ = raw_root
    assert main(["data", "encode", "--tokenizer", str(cosmos["cv8"]), "--data", str(root), "--image-size", "16",
                 "--batch-size", "34", "--device", "cpu"]) == 0, capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["train", "flow", "--data", str(root), "--config", "tiny", "--out", str(out), "train.steps=3",
                 "train.batch_size=2", "train.val_every=2", "data.action_pooling=frames"]) == 0, capsys.readouterr().err
    assert "5 training windows, 1 validation windows" in capsys.readouterr().out
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["model"]["past_action_tokens"] == 9 and config["model"]["actions_per_latent"] == 8
    assert config["latent_layout"] == {"temporal_compression": 8, "chunk_frames": 17, "latent_frames": LATENT_FRAMES}
    assert config["action_names"][0] == "HIP_YAW" and config["source"] == "1x-v2.0-raw" and config["fps"] == 30
    model = load_world_model(out / "final")
    tokenizer = load_tokenizer(out / "final" / "tokenizer")
    assert tokenizer.image_size == (16, 16) and tokenizer.latent_channels == model.config.latent_channels == 16
    prediction = model.predict(torch.zeros(1, 2, 16, 2, 2), torch.zeros(1, 9, 25), torch.zeros(1, 8, 25))
    assert prediction.shape == (1, 1, 16, 2, 2)
    paper = load_flow_config("paper").data
    assert (paper.num_past, paper.num_future, paper.action_pooling) == (2, 1, "frames")
    assert_scored_on_pixels(out / "final", root / "val_v2.0_raw", tmp_path, capsys)


def test_bad_input_says_what_to_do(raw_root, cosmos, tmp_path, capsys):
    from models.tokenizers import AutoencoderConfig, ConvTokenizer

    root, _ = raw_root
    # a raw root where latents are needed
    assert main(["train", "flow", "--data", str(root), "--config", "tiny", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "train_v2.0_raw: no pre-encoded latents" in error
    assert "hwm data encode --tokenizer <Cosmos-0.1-Tokenizer-CV8x8x8 folder>" in error
    # 1X's tokenized release: tokens only
    tokenized = tmp_path / "worldmodel"
    write_onex_split(tokenized / "train_v2.0", [40], [[]], nested=True)
    write_onex_split(tokenized / "val_v2.0", [20], [[]], nested=False)
    assert main(["train", "flow", "--data", str(tokenized), "--config", "tiny", "--out", str(tmp_path / "run")]) == 2
    assert "source 'tokens' only" in (error := capsys.readouterr().err) and "raw variant" in error
    assert main(["data", "encode", "--tokenizer", str(cosmos["cv8"]), "--data", str(tokenized), "--device", "cpu"]) == 2
    assert "tokenized split" in (error := capsys.readouterr().err) and "raw variant" in error
    # a per-frame tokenizer on 1X chunks
    per_frame = ConvTokenizer(AutoencoderConfig(image_size=[32, 32], **TINY)).save(tmp_path / "per_frame")
    assert main(["data", "encode", "--tokenizer", str(per_frame), "--data", str(root), "--device", "cpu"]) == 2
    assert "temporal compression 1" in (error := capsys.readouterr().err) and "hwm data convert" in error
    # a Cosmos folder missing a file
    broken = tmp_path / "Cosmos-0.1-Tokenizer-CV8x8x8"
    shutil.copytree(cosmos["cv8"], broken)
    (broken / "decoder.jit").unlink()
    assert main(["data", "encode", "--tokenizer", str(broken), "--data", str(root), "--device", "cpu"]) == 2
    assert f"{broken / 'decoder.jit'}: missing" in (error := capsys.readouterr().err) and "download" in error
    (broken / "encoder.jit").unlink()  # config.json alone still says it is a Cosmos folder
    assert main(["data", "encode", "--tokenizer", str(broken), "--data", str(root), "--device", "cpu"]) == 2
    assert f"{broken / 'encoder.jit'}: missing" in capsys.readouterr().err
    # train and val encoded by tokenizers of different temporal compression
    encode_dataset(root, cosmos["cv8"], split="train_v2.0_raw", device="cpu", image_size=16)
    encode_dataset(root, cosmos["cv4"], split="val_v2.0_raw", device="cpu", image_size=16)
    assert read_encoding(root / "val_v2.0_raw", "latents")[1]["latents_per_chunk"] == 5  # 17 frames at 4x
    assert main(["train", "flow", "--data", str(root), "--config", "tiny", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "val_v2.0_raw/latents.json" in error and "'temporal_compression': 4" in error and "same tokenizer" in error


def test_encode_raw_then_train_masked_on_its_dv_tokens(raw_root, cosmos, tmp_path, capsys):
    root, _ = raw_root
    out = tmp_path / "masked"
    train = ["train", "masked", "--data", str(root), "--config", "tiny", "--out", str(out), "train.steps=2",
             "train.batch_size=2", "train.val_every=2", "model.factorized_head=false", "model.factorized_embedding=false"]
    assert main(train) == 2 and "raw MP4 variant" in capsys.readouterr().err  # not encoded yet: says what to do
    assert main(["data", "encode", "--tokenizer", str(cosmos["dv8"]), "--data", str(root), "--image-size", "16",
                 "--device", "cpu"]) == 0, capsys.readouterr().err
    assert main(train) == 0, capsys.readouterr().err
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["model"]["vocab_size"] == 64000 and list(config["model"]["token_grid"]) == [2, 2]
    assert_scored_on_pixels(out / "final", root / "val_v2.0_raw", tmp_path, capsys)
