"""hwm-v1 writer/reader: round trip, atomicity, pre-encoded latents/tokens, and every bad input."""
import json

import numpy as np
import pytest

from models.data.hwm_format import HWMDataset, HWMWriter, write_encoding
from models.data.open import open_split, open_splits

NAMES = ["joint_a", "joint_b", "grip"]


def make_episode(rng, length, height=8, width=6):
    frames = rng.integers(0, 256, (length, height, width, 3), dtype=np.uint8)
    actions = rng.normal(size=(length, 3)).astype(np.float32)
    actions[:, 2] = rng.integers(0, 2, length)
    states = rng.normal(size=(length, 2)).astype(np.float32)
    return frames, actions, states


def write_split(path, lengths=(5, 7, 4), seed=0):
    rng = np.random.default_rng(seed)
    episodes = [make_episode(rng, n) for n in lengths]
    with HWMWriter(path, 8, 6, action_dim=3, fps=15, action_names=NAMES, state_dim=2,
                   source="test", binary_action_dims=[2]) as writer:
        for episode in episodes:
            writer.add_episode(*episode)
    return episodes


def test_round_trip(tmp_path):
    episodes = write_split(tmp_path / "train")
    data = HWMDataset(tmp_path / "train")
    assert len(data) == 16
    assert data.frames.shape == (16, 8, 6, 3) and data.frames.dtype == np.uint8
    assert data.actions.shape == (16, 3) and data.actions.dtype == np.float32
    assert data.states.shape == (16, 2) and data.segment_idx.dtype == np.int32
    assert data.episode_ranges() == [(0, 5), (5, 12), (12, 16)]
    np.testing.assert_array_equal(data.segment_idx, [0] * 5 + [1] * 7 + [2] * 4)
    for (start, stop), (frames, actions, states) in zip(data.episode_ranges(), episodes):
        np.testing.assert_array_equal(data.frames[start:stop], frames)
        np.testing.assert_array_equal(data.actions[start:stop], actions)
        np.testing.assert_array_equal(data.states[start:stop], states)
    meta = data.metadata
    assert meta["format"] == "hwm-v1" and meta["fps"] == 15 and meta["action_names"] == NAMES
    assert meta["binary_action_dims"] == [2] and meta["state_dim"] == 2 and meta["source"] == "test"
    assert data.latents is None and data.tokens is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_no_states_and_float64_actions_are_stored_as_float32(tmp_path):
    rng = np.random.default_rng(1)
    frames, actions, _ = make_episode(rng, 3)
    with HWMWriter(tmp_path / "s", 8, 6, 3, 30, NAMES) as writer:
        writer.add_episode(frames, actions.astype(np.float64))
    data = HWMDataset(tmp_path / "s")
    assert data.states is None and data.metadata["state_dim"] is None
    np.testing.assert_array_equal(data.actions, actions)


def test_exception_inside_writer_leaves_nothing(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(RuntimeError, match="boom"):
        with HWMWriter(tmp_path / "train", 8, 6, 3, 30, NAMES) as writer:
            writer.add_episode(*make_episode(rng, 4)[:2])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_previous_split(tmp_path):
    write_split(tmp_path / "train")
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="actions"):
        with HWMWriter(tmp_path / "train", 8, 6, 3, 30, NAMES, state_dim=2) as writer:
            frames, actions, states = make_episode(rng, 4)
            actions[1, 0] = np.nan
            writer.add_episode(frames, actions, states)
    assert len(HWMDataset(tmp_path / "train")) == 16
    assert [p.name for p in tmp_path.iterdir()] == ["train"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f, a, s: (f.astype(np.float32), a, s), "frames: dtype float32, expected uint8"),
        (lambda f, a, s: (f[:, :4], a, s), r"frames: shape \(4, 4, 6, 3\), expected \(T, 8, 6, 3\)"),
        (lambda f, a, s: (f, a[:3], s), r"actions: shape \(3, 3\), expected \(4, 3\)"),
        (lambda f, a, s: (f, np.where(np.eye(4, 3, dtype=bool), np.inf, a), s), "actions: contains NaN or inf"),
        (lambda f, a, s: (f, a.astype(bool), s), "actions: dtype bool, expected float32"),
        (lambda f, a, s: (f, a, None), "states: missing"),
        (lambda f, a, s: (f, a, np.full_like(s, np.nan)), "states: contains NaN or inf"),
        (lambda f, a, s: (f[:0], a[:0], s[:0]), "empty episode"),
    ],
)
def test_writer_rejects_bad_episodes(tmp_path, change, message):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=message):
        with HWMWriter(tmp_path / "train", 8, 6, 3, 30, NAMES, state_dim=2) as writer:
            writer.add_episode(*change(*make_episode(rng, 4)))
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="2 action_names for action_dim 3"):
        HWMWriter(tmp_path / "x", 8, 6, 3, 30, NAMES[:2])
    with pytest.raises(ValueError, match="binary_action_dims"):
        HWMWriter(tmp_path / "x", 8, 6, 3, 30, NAMES, binary_action_dims=[3])
    with pytest.raises(ValueError, match="no episodes"):
        with HWMWriter(tmp_path / "x", 8, 6, 3, 30, NAMES):
            pass
    assert list(tmp_path.iterdir()) == []


def test_reader_names_missing_and_truncated_files(tmp_path):
    write_split(tmp_path / "train")
    frames = tmp_path / "train" / "frames.bin"
    frames.write_bytes(frames.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"frames\.bin: size 2297 bytes, expected 2304"):
        HWMDataset(tmp_path / "train")
    frames.unlink()
    with pytest.raises(FileNotFoundError, match=r"frames\.bin: missing"):
        HWMDataset(tmp_path / "train")
    (tmp_path / "train" / "metadata.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"metadata\.json: missing"):
        HWMDataset(tmp_path / "train")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HWMDataset(tmp_path / "nowhere")


def test_reader_rejects_bad_metadata(tmp_path):
    write_split(tmp_path / "train")
    path = tmp_path / "train" / "metadata.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "format": "hwm-v0"}))
    with pytest.raises(ValueError, match="format 'hwm-v0', expected 'hwm-v1'"):
        HWMDataset(tmp_path / "train")
    path.write_text(json.dumps({k: v for k, v in meta.items() if k != "fps"}))
    with pytest.raises(ValueError, match=r"missing keys \['fps'\]"):
        HWMDataset(tmp_path / "train")
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        HWMDataset(tmp_path / "train")


def test_reader_rejects_non_monotone_segments_and_nan_actions(tmp_path):
    write_split(tmp_path / "train")
    segments = np.fromfile(tmp_path / "train" / "segment_idx.bin", dtype=np.int32)
    segments[9] = 0
    segments.tofile(tmp_path / "train" / "segment_idx.bin")
    with pytest.raises(ValueError, match=r"segment_idx\.bin: segment_idx is not non-decreasing \(frame 9"):
        HWMDataset(tmp_path / "train")
    write_split(tmp_path / "train")
    actions = np.fromfile(tmp_path / "train" / "actions.bin", dtype=np.float32)
    actions[3 * 11 + 1] = np.inf
    actions.tofile(tmp_path / "train" / "actions.bin")
    with pytest.raises(ValueError, match=r"actions\.bin: actions contain NaN or inf \(first at row 11\)"):
        HWMDataset(tmp_path / "train")


def test_write_encoding_latents_and_tokens(tmp_path):
    write_split(tmp_path / "train")
    tokenizer = tmp_path / "tok"
    tokenizer.mkdir()
    (tokenizer / "config.json").write_text('{"family": "tokenizer"}')
    latents = np.random.default_rng(0).normal(size=(16, 4, 2, 2)).astype(np.float32)
    write_encoding(tmp_path / "train", "latents", iter([latents[:10], latents[10:]]), {"latent_channels": 4}, tokenizer)
    tokens = np.arange(16 * 2 * 2).reshape(16, 2, 2)
    write_encoding(tmp_path / "train", "tokens", tokens, {"vocab_size": 64}, tokenizer)
    data = HWMDataset(tmp_path / "train")
    assert data.latents.shape == (16, 4, 2, 2) and data.latents.dtype == np.float16
    np.testing.assert_allclose(data.latents, latents, atol=2e-3)
    assert data.latents_info == {"kind": "latents", "shape": [16, 4, 2, 2], "dtype": "float16",
                                 "temporal_compression": 1, "tokenizer": {"latent_channels": 4}}
    np.testing.assert_array_equal(data.tokens, tokens)
    assert data.tokens.dtype == np.int32 and data.tokens_info["tokenizer"] == {"vocab_size": 64}
    assert (data.encoding_tokenizer_dir("latents") / "config.json").is_file()
    assert not [p for p in (tmp_path / "train").iterdir() if p.name.startswith(".")]


def test_write_encoding_rejects_bad_input_and_keeps_old(tmp_path):
    write_split(tmp_path / "train")
    good = np.zeros((16, 4, 2, 2), np.float32)
    write_encoding(tmp_path / "train", "latents", good, {})
    with pytest.raises(ValueError, match="latents: 15 items for 16 frames"):
        write_encoding(tmp_path / "train", "latents", good[:15], {})
    bad = good.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="latents: contain NaN or inf"):
        write_encoding(tmp_path / "train", "latents", bad, {})
    with pytest.raises(ValueError, match="tokens: dtype float32, expected an integer array"):
        write_encoding(tmp_path / "train", "tokens", np.zeros((16, 2, 2), np.float32), {})
    with pytest.raises(ValueError, match="encoding kind"):
        write_encoding(tmp_path / "train", "pixels", good, {})
    data = HWMDataset(tmp_path / "train")
    assert data.latents.shape == (16, 4, 2, 2) and data.tokens is None
    assert not [p for p in (tmp_path / "train").iterdir() if p.name.startswith(".")]
    latents = tmp_path / "train" / "latents.bin"
    latents.write_bytes(latents.read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"latents\.bin: size"):
        HWMDataset(tmp_path / "train")


def test_open_split_and_splits(tmp_path):
    write_split(tmp_path / "root" / "train")
    write_split(tmp_path / "root" / "val", lengths=(3,))
    train, val = open_splits(tmp_path / "root")
    assert isinstance(train, HWMDataset) and len(train) == 16 and len(val) == 3
    assert isinstance(open_split(tmp_path / "root" / "val"), HWMDataset)
    with pytest.raises(ValueError, match="is a single split"):
        open_splits(tmp_path / "root" / "train")
    with pytest.raises(ValueError, match="not a data split"):
        open_split(tmp_path / "root")
    with pytest.raises(FileNotFoundError, match="no split folders"):
        open_splits(tmp_path)


def run_data_command(argv):
    import argparse

    from train.data import commands

    parser = argparse.ArgumentParser(prog="hwm")
    root = parser.add_subparsers()
    groups = {"": root, "data": root.add_parser("data").add_subparsers()}
    commands.register(groups)
    args = parser.parse_args(["data", *argv])
    return args.func(args)


def test_data_info_on_a_root_and_a_split(tmp_path, capsys):
    write_split(tmp_path / "root" / "train")
    write_split(tmp_path / "root" / "val", lengths=(3,))
    write_encoding(tmp_path / "root" / "train", "tokens", np.zeros((16, 2, 2), np.int64), {"vocab_size": 8})
    assert run_data_command(["info", str(tmp_path / "root")]) == 0
    out = capsys.readouterr().out
    assert "train  (hwm-v1)" in out and "val  (hwm-v1)" in out
    assert "frames      16 in 3 episodes" in out and "resolution  8x6 RGB" in out and "fps         15" in out
    assert "tokens      (16, 2, 2) int32" in out
    assert "grip" in out and "binary" in out
    assert run_data_command(["info", str(tmp_path / "root" / "train"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    actions = np.asarray(HWMDataset(tmp_path / "root" / "train").actions, dtype=np.float64)
    assert summary["frames"] == 16 and summary["episodes"] == 3 and summary["resolution"] == [8, 6]
    assert summary["actions"][0]["name"] == "joint_a" and summary["actions"][2]["binary"]
    np.testing.assert_allclose(summary["actions"][1]["mean"], actions[:, 1].mean())
    np.testing.assert_allclose(summary["actions"][1]["max"], actions[:, 1].max())
    with pytest.raises(ValueError, match="neither a data split"):
        run_data_command(["info", str(tmp_path)])


def test_data_info_on_onex_layouts(tmp_path, capsys):
    from onex_fixtures import write_onex_split

    write_onex_split(tmp_path / "wm" / "train_v2.0", [200, 203], [[100], []], nested=True)
    write_onex_split(tmp_path / "wm" / "val_v2.0", [60], [[]], nested=False)
    write_onex_split(tmp_path / "raw" / "val_v2.0_raw", [20], [[]], nested=False, variant="raw")
    assert run_data_command(["info", str(tmp_path / "wm")]) == 0
    out = capsys.readouterr().out
    assert "train_v2.0  (1x-v2.0-tokens)" in out and "403 in 3 episodes/segments, 2 shards" in out
    assert "21 of 24 chunks usable (2 partial, 1 crossing a segment)" in out
    assert "LEFT_HAND_CLOSURE" in out and "val_v2.0  (1x-v2.0-tokens)" in out
    assert run_data_command(["info", str(tmp_path / "raw" / "val_v2.0_raw")]) == 0
    out = capsys.readouterr().out
    assert "(1x-v2.0-raw)" in out and "resolution  32x32 RGB" in out and "frames      20 in 1" in out


def test_write_encoding_takes_torch_batches(tmp_path):
    import torch

    write_split(tmp_path / "train", lengths=(4,))
    latents = torch.linspace(-2, 2, 4 * 8).reshape(4, 2, 2, 2)
    write_encoding(tmp_path / "train", "latents", [latents[:1].bfloat16(), latents[1:]], {})
    stored = HWMDataset(tmp_path / "train").latents
    np.testing.assert_allclose(stored[1:], latents[1:].numpy(), atol=2e-3)
    np.testing.assert_allclose(stored[:1], latents[:1].numpy(), atol=2e-2)  # via bf16


def test_reader_rejects_bad_binary_dims(tmp_path):
    write_split(tmp_path / "train")
    path = tmp_path / "train" / "metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "binary_action_dims": [3]}))
    with pytest.raises(ValueError, match=r"binary_action_dims \[3\], expected indices in \[0, 3\)"):
        HWMDataset(tmp_path / "train")
