"""`hwm data convert`: 1X v2.0 raw MP4 shards to hwm-v1, checked frame by frame."""
import json

import numpy as np
import pytest
from onex_fixtures import decode_frame_code, write_onex_split, write_raw_root

from hwm_env.cli import main
from models.data import onex
from models.data.hwm_format import HWMDataset, HWMWriter
from models.data.open import open_split, open_splits
from models.data.windows import WindowDataset


@pytest.fixture
def raw_root(tmp_path):
    root = tmp_path / "raw"
    return root, write_raw_root(root)


def test_convert_a_root_frames_states_actions_segments(raw_root, tmp_path, capsys):
    root, written = raw_root
    out = tmp_path / "hwm"
    # batches of 16 frames cut every segment into pieces, which must stay one episode
    assert main(["data", "convert", "--data", str(root), "--out", str(out), "--resolution", "16",
                 "--batch-frames", "16"]) == 0
    assert "wrote 115 frames in 3 episodes" in capsys.readouterr().out
    train, val = open_splits(out)
    assert isinstance(train, HWMDataset) and len(train) == 115 and len(val) == 23
    assert train.frames.shape == (115, 16, 16, 3) and train.fps == 30
    assert train.action_names == list(onex.ONEX_ACTION_NAMES) and train.binary_action_dims == [21, 22]
    assert train.metadata["state_dim"] == 25 and train.metadata["source"] == "1x-v2.0-raw"
    assert train.metadata["converted_from"]["video_resolution"] == [32, 32]
    # frames: the raw reader's frames at the same size, in order, shard after shard
    raw = open_split(root / "train_v2.0_raw", image_size=(16, 16))
    expected = np.concatenate([raw.read_frames(shard, np.arange(shard.num_frames)) for shard in raw.shards])
    np.testing.assert_array_equal(train.frames, expected)
    assert [decode_frame_code(frame) for frame in train.frames[[0, 39, 40, 69, 70, 114]]] == [0, 39, 40, 69, 0, 44]
    states = np.concatenate(written["states"])
    np.testing.assert_array_equal(train.states, states)
    np.testing.assert_array_equal(train.segment_idx, np.repeat([0, 1, 2], [40, 30, 45]))
    # the action of frame t is the state of frame t+1; a segment's last frame holds its own state
    last = [39, 69, 114]
    for t in range(115):
        np.testing.assert_array_equal(train.actions[t], states[t] if t in last else states[t + 1])


def test_converted_windows_carry_the_raw_readers_actions(raw_root, tmp_path):
    root, _ = raw_root
    assert main(["data", "convert", "--data", str(root / "train_v2.0_raw"), "--out", str(tmp_path / "train"),
                 "--resolution", "16"]) == 0
    kwargs = dict(num_past=2, num_future=1, source="frames", frame_stride=3, action_pooling="none")
    converted = WindowDataset(tmp_path / "train", **kwargs)
    raw = WindowDataset(open_split(root / "train_v2.0_raw", image_size=(16, 16)), **kwargs)
    raw_windows = {(raw[i]["shard"], raw[i]["start"]): raw[i] for i in range(len(raw))}
    matched = 0
    for i in range(len(converted)):
        item = converted[i]
        shard, start = (0, item["start"]) if item["start"] < 70 else (1, item["start"] - 70)
        twin = raw_windows.get((shard, start))
        if twin is None:
            continue
        matched += 1
        for key in ("past_frames", "future_frames", "past_actions", "future_actions"):
            assert (item[key] == twin[key]).all(), key
    # every converted window has a raw twin with equal frames and actions (88 of them today)
    assert matched == len(converted) >= 80


def test_a_segment_running_into_the_next_shard_stays_one_episode(tmp_path):
    write_onex_split(tmp_path / "raw", [30, 20], [[], []], nested=False, variant="raw", continue_segments=True)
    written_states = [np.fromfile(tmp_path / "raw" / f"states_{i}.bin", np.float32).reshape(-1, 25) for i in (0, 1)]
    assert main(["data", "convert", "--data", str(tmp_path / "raw"), "--out", str(tmp_path / "hwm"),
                 "--resolution", "8"]) == 0
    split = HWMDataset(tmp_path / "hwm")
    assert split.num_episodes == 1 and len(split) == 50
    np.testing.assert_array_equal(split.actions[29], written_states[1][0])  # the next shard's first state
    np.testing.assert_array_equal(split.actions[49], written_states[1][19])


def test_a_test_split_without_segment_indices_gives_one_episode_per_shard(tmp_path):
    write_onex_split(tmp_path / "raw", [17, 17], [[], []], nested=False, variant="raw", segment_files=False)
    assert main(["data", "convert", "--data", str(tmp_path / "raw"), "--out", str(tmp_path / "hwm")]) == 0
    split = HWMDataset(tmp_path / "hwm")
    assert (split.height, split.width) == (64, 64)  # the default resolution
    assert split.num_episodes == 2 and split.metadata["converted_from"]["segment_indices"] is False


def test_video_with_more_frames_than_states_names_both_counts(raw_root, tmp_path, capsys):
    root, _ = raw_root
    val = root / "val_v2.0_raw"  # its MP4 has 23 frames; say 20
    (val / "metadata_0.json").write_text(json.dumps({"shard_num_frames": 20, "shard_ind": 0}))
    np.zeros((20, 25), np.float32).tofile(val / "states_0.bin")
    np.zeros(20, np.int32).tofile(val / "segment_idx_0.bin")
    (val / "metadata.json").write_text(json.dumps({"num_shards": 1, "hz": 30}))
    assert main(["data", "convert", "--data", str(root), "--out", str(tmp_path / "hwm")]) == 2
    error = capsys.readouterr().err
    assert "video_0.mp4: 23 video frames, but" in error and "states_0.bin has 20" in error
    assert not (tmp_path / "hwm").exists() and list(tmp_path.glob(".hwm*")) == []  # nothing half-written


def test_bad_sources_and_outputs_say_what_to_do(raw_root, tmp_path, capsys):
    root, _ = raw_root
    write_onex_split(tmp_path / "tokens" / "train_v2.0", [40], [[]], nested=True)
    write_onex_split(tmp_path / "tokens" / "val_v2.0", [20], [[]], nested=False)
    assert main(["data", "convert", "--data", str(tmp_path / "tokens"), "--out", str(tmp_path / "a")]) == 2
    assert "Cosmos tokens" in capsys.readouterr().err
    assert main(["data", "convert", "--data", str(tmp_path / "tokens" / "val_v2.0"), "--out", str(tmp_path / "a")]) == 2
    assert "convert the raw MP4 variant" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    assert main(["data", "convert", "--data", str(root), "--out", str(tmp_path / "full")]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["data", "convert", "--data", str(root), "--out", str(tmp_path / "b"), "--resolution", "0"]) == 2
    assert "--resolution 0" in capsys.readouterr().err
    assert main(["data", "convert", "--data", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    assert "neither a 1X v2.0 raw split" in capsys.readouterr().err


def test_writer_continues_an_episode_only_after_one(tmp_path):
    frames, actions = np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 1), np.float32)
    with pytest.raises(ValueError, match="no previous episode"):
        with HWMWriter(tmp_path / "split", 4, 4, 1, 30, ["a"]) as writer:
            writer.add_episode(frames, actions, continues=True)
    with HWMWriter(tmp_path / "split", 4, 4, 1, 30, ["a"]) as writer:
        writer.add_episode(frames, actions)
        writer.add_episode(frames, actions, continues=True)
        writer.add_episode(frames, actions)
    split = HWMDataset(tmp_path / "split")
    assert split.segment_idx.tolist() == [0, 0, 0, 0, 1, 1] and split.metadata["num_episodes"] == 2
