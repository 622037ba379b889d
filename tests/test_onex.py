"""1X world-model v2.0 readers on synthetic shards written in the exact layouts."""
import json
from pathlib import Path

import numpy as np
import pytest
from onex_fixtures import decode_frame_code, write_onex_split, write_raw_root

from models.data import onex
from models.data.open import open_split, open_splits, split_format
from models.data.windows import WindowDataset, action_statistics

# odd frame counts: 200 = 17*11+13, 203 = 17*11+16, 191 = 17*11+4 -> each last chunk is partial
TRAIN_FRAMES = [200, 203, 191]
# shard 0: a segment change at frame 100 inside chunk 5 (frames 85..101) -> chunk 5 dropped;
# shard 1: a change at frame 119 = 17*7, a chunk boundary -> nothing dropped
TRAIN_BOUNDARIES = [[100], [119], []]


@pytest.fixture
def onex_root(tmp_path):
    root = tmp_path / "worldmodel"
    written = write_onex_split(root / "train_v2.0", TRAIN_FRAMES, TRAIN_BOUNDARIES, nested=True)
    write_onex_split(root / "val_v2.0", [101], [[]], nested=False, seed=1)
    return root, written


def test_layout_detection_and_shapes(onex_root):
    root, written = onex_root
    assert (root / "train_v2.0" / "videos" / "video_2.bin").is_file()
    assert (root / "val_v2.0" / "video_0.bin").is_file()
    train, val = open_splits(root)
    assert isinstance(train, onex.OneXTokenizedSplit) and isinstance(val, onex.OneXTokenizedSplit)
    assert split_format(root / "train_v2.0") == "1x-v2.0-tokens"
    assert len(train) == sum(TRAIN_FRAMES) and len(val) == 101
    assert [s.num_frames for s in train.shards] == TRAIN_FRAMES
    assert train.shards[1].tokens.shape == (12, 3, 32, 32) and train.shards[1].tokens.dtype == np.int32
    assert train.shards[0].states.shape == (200, 25) and train.shards[0].states.dtype == np.float32
    assert train.shards[2].segment_idx.dtype == np.int32
    np.testing.assert_array_equal(train.shards[1].states, written["states"][1])
    assert train.num_episodes == 5 and train.num_chunks == 36
    # 11 full chunks per shard; the partial 12th is dropped, and chunk 5 of shard 0 crosses a segment
    assert train.shards[0].kept_chunks().tolist() == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert train.shards[1].kept_chunks().tolist() == list(range(11))
    assert train.num_kept_chunks == 32
    assert train.action_names[21] == "LEFT_HAND_CLOSURE" and train.binary_action_dims == [21, 22]


def test_token_windows_are_one_chunk_with_aligned_actions(onex_root):
    root, written = onex_root
    windows = WindowDataset(root / "train_v2.0", num_past=2, num_future=1, source="tokens")
    assert len(windows) == 32  # one P=2, F=1 window per kept chunk
    seen = set()
    for index in range(len(windows)):
        item = windows[index]
        shard, start = item["shard"], item["start"]
        assert start % 17 == 0
        chunk = start // 17
        seen.add((shard, chunk))
        assert item["past_tokens"].shape == (2, 32, 32) and item["past_tokens"].dtype.is_floating_point is False
        assert item["future_tokens"].shape == (1, 32, 32)
        expected_ids = 3 * chunk + np.arange(3) + 1000 * shard
        assert item["past_tokens"][:, 0, 0].tolist() == expected_ids[:2].tolist()
        assert item["future_tokens"][0, 7, 3].item() == expected_ids[2]
        # action into latent: mean of the states at the frames it covers (dim 0 = frame index)
        assert item["past_actions"].shape == (2, 25) and item["future_actions"].shape == (1, 25)
        frame_index = np.concatenate([item["past_actions"][:, 0], item["future_actions"][:, 0]])
        np.testing.assert_allclose(frame_index, [start, start + 4.5, start + 12.5])
        assert (item["past_actions"][:, 1] == shard).all()
        segment_idx = written["segment_idx"][shard]
        assert item["segment"] == segment_idx[start] == segment_idx[start + 16]
    assert (0, 5) not in seen and (0, 11) not in seen and (1, 11) not in seen  # crossing / partial


def test_per_frame_actions_of_a_chunk(onex_root):
    root, written = onex_root
    windows = WindowDataset(root / "train_v2.0", source="tokens", action_pooling="none")
    item = windows[3]
    start, states = item["start"], written["states"][item["shard"]]
    assert item["past_actions"].shape == (2, 8, 25) and item["future_actions"].shape == (1, 8, 25)
    np.testing.assert_array_equal(item["past_actions"][0], np.repeat(states[start : start + 1], 8, axis=0))
    np.testing.assert_array_equal(item["past_actions"][1], states[start + 1 : start + 9])
    np.testing.assert_array_equal(item["future_actions"][0], states[start + 9 : start + 17])


def test_cross_chunk_windows_stay_in_segment(onex_root):
    root, written = onex_root
    windows = WindowDataset(root / "train_v2.0", num_past=4, num_future=2, source="tokens", cross_chunks=True)
    # runs of adjacent kept chunks in one segment: 5+5 (shard 0), 7+4 (shard 1), 11 (shard 2) chunks
    assert len(windows) == sum(3 * m - 5 for m in (5, 5, 7, 4, 11))
    for index in range(len(windows)):
        item = windows[index]
        ids = np.concatenate([item["past_tokens"][:, 0, 0], item["future_tokens"][:, 0, 0]]) - 1000 * item["shard"]
        chunks = ids // 3
        frames = chunks * 17 + np.array([0, 8, 16])[ids % 3]
        assert (np.diff(ids) == 1).all()
        segments = written["segment_idx"][item["shard"]][frames]
        assert (segments == item["segment"]).all()
        assert not (item["shard"] == 0 and (chunks == 5).any())


def test_val_is_flat_and_windows_too_long_fail(onex_root):
    root, _ = onex_root
    val = WindowDataset(root / "val_v2.0", source="tokens")
    assert len(val) == 5  # 101 = 17*5 + 16 frames
    with pytest.raises(ValueError, match=r"val_v2.0: no window of 3 past \+ 1 future.*4 consecutive latents, the longest run has 3"):
        WindowDataset(root / "val_v2.0", num_past=3, num_future=1, source="tokens")
    with pytest.raises(ValueError, match="source 'tokens' only"):
        WindowDataset(root / "val_v2.0", source="latents")
    with pytest.raises(ValueError, match="fixed clock"):
        WindowDataset(root / "val_v2.0", source="tokens", frame_stride=2)


def test_action_statistics_of_onex(onex_root):
    root, written = onex_root
    mean, std, binary = action_statistics(root / "train_v2.0")
    states = np.concatenate(written["states"])
    assert binary == [21, 22]
    assert mean[21] == 0 and std[22] == 1
    np.testing.assert_allclose(mean[:21], states[:, :21].mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std[2:21], states[:, 2:21].std(axis=0), rtol=1e-4)


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda s: (s / "robot_states" / "states_1.bin").unlink(), FileNotFoundError, r"states_1\.bin: missing"),
        (lambda s: (s / "metadata" / "metadata_2.json").unlink(), FileNotFoundError, r"metadata_2\.json: missing"),
        (lambda s: (s / "videos" / "video_1.bin").write_bytes(b"\0" * 12288 * 11), ValueError,
         r"video_1\.bin: size 135168 bytes, expected 147456"),
        (lambda s: (s / "robot_states" / "states_0.bin").write_bytes(b"\0" * 100 * 199), ValueError,
         r"states_0\.bin: size 19900 bytes, expected 20000"),
        (lambda s: np.arange(191, 0, -1, dtype=np.int32).tofile(s / "segment_indices" / "segment_idx_2.bin"),
         ValueError, r"segment_idx_2\.bin: segment_idx is not non-decreasing"),
        (lambda s: np.full((203, 25), np.nan, np.float32).tofile(s / "robot_states" / "states_1.bin"),
         ValueError, r"states_1\.bin: states contain NaN or inf \(first at row 0\)"),
        (lambda s: (s / "metadata.json").write_text(json.dumps({"num_shards": 3, "hz": 30, "num_images": 5})),
         ValueError, "num_images 5, but the shards"),
    ],
)
def test_bad_onex_shards_name_the_file(onex_root, damage, error, message):
    root, _ = onex_root
    damage(root / "train_v2.0")
    with pytest.raises(error, match=message):
        open_split(root / "train_v2.0")


def test_out_of_range_tokens_fail_on_read(onex_root):
    root, _ = onex_root
    tokens = np.fromfile(root / "val_v2.0" / "video_0.bin", dtype=np.int32)
    tokens[:3072] = 64000
    tokens.tofile(root / "val_v2.0" / "video_0.bin")
    windows = WindowDataset(root / "val_v2.0", source="tokens")
    windows[1]
    with pytest.raises(ValueError, match=r"video_0\.bin: token ids outside \[0, 64000\)"):
        windows[0]


@pytest.fixture
def raw_root(tmp_path):
    root = tmp_path / "raw"
    return root, write_raw_root(root)


def test_raw_layout_frames_and_actions_share_the_clock(raw_root):
    root, written = raw_root
    train, val = open_splits(root)
    assert isinstance(train, onex.OneXRawSplit) and train.format == "1x-v2.0-raw"
    assert (train.height, train.width) == (32, 32) and len(val) == 23
    windows = WindowDataset(train, num_past=2, num_future=1, source="frames", frame_stride=3, action_pooling="none")
    # the 3 actions into a start r are states[r-2 : r+1]: segment [0, 40): starts 2..33; [40, 70): 42..63; shard 1: 2..38
    assert len(windows) == 32 + 22 + 37
    for index in range(0, len(windows), 5):
        item = windows[index]
        frames = np.concatenate([item["past_frames"], item["future_frames"]])
        assert frames.shape == (3, 32, 32, 3) and frames.dtype == np.uint8
        raw = [decode_frame_code(frame) for frame in frames]
        start = item["start"]
        assert raw == [start, start + 3, start + 6]
        # the 3 actions into frame r are states[r-2 : r+1] (action of frame t = state of t+1)
        actions = np.concatenate([item["past_actions"], item["future_actions"]])  # (3, 3, 25)
        assert actions.shape == (3, 3, 25)
        np.testing.assert_array_equal(actions[:, :, 0], np.array(raw)[:, None] + np.arange(-2, 1))
        states, segments = written["states"][item["shard"]], written["segment_idx"][item["shard"]]
        np.testing.assert_array_equal(actions[2], states[start + 4 : start + 7])
        assert (segments[start - 2 : start + 7] == item["segment"]).all()


def test_raw_resize_and_mean_pooling(raw_root):
    root, _ = raw_root
    split = open_split(root / "val_v2.0_raw", image_size=(16, 16))
    windows = WindowDataset(split, num_past=1, num_future=1, source="frames", frame_stride=2)
    item = windows[4]
    assert item["past_frames"].shape == (1, 16, 16, 3)
    assert decode_frame_code(item["future_frames"][0].numpy()) == item["start"] + 2
    np.testing.assert_allclose(item["past_actions"][:, 0], [item["start"] - 0.5])


def test_raw_video_shorter_than_states_fails(raw_root):
    root, _ = raw_root
    (root / "val_v2.0_raw" / "metadata_0.json").write_text(json.dumps({"shard_num_frames": 30, "shard_ind": 0}))
    np.zeros((30, 25), np.float32).tofile(root / "val_v2.0_raw" / "states_0.bin")
    np.zeros(30, np.int32).tofile(root / "val_v2.0_raw" / "segment_idx_0.bin")
    (root / "val_v2.0_raw" / "metadata.json").write_text(json.dumps({"num_shards": 1, "hz": 30}))
    with pytest.raises(ValueError, match=r"video_0\.mp4: 23 video frames, but metadata_0\.json says 30"):
        open_split(root / "val_v2.0_raw")


def test_onex_windows_survive_pickling(onex_root, raw_root):
    import pickle

    root, _ = onex_root
    tokens = WindowDataset(root / "train_v2.0", source="tokens")
    clone = pickle.loads(pickle.dumps(tokens))
    assert len(clone) == len(tokens) and (clone[7]["past_tokens"] == tokens[7]["past_tokens"]).all()
    raw_dir, _ = raw_root
    frames = WindowDataset(open_split(raw_dir / "val_v2.0_raw", image_size=(16, 16)), source="frames")
    frames[0]  # opens a decoder, which must not travel with the pickle
    clone = pickle.loads(pickle.dumps(frames))
    assert clone.split.image_size == (16, 16) and (clone[2]["future_frames"] == frames[2]["future_frames"]).all()


# --- issue 31: a test split without segment indices, segments across shards, the window rule ---

def test_info_describes_a_root_whose_test_split_has_no_segment_indices(onex_root, capsys):
    from hwm_env.cli import main

    root, _ = onex_root
    write_onex_split(root / "test_v2.0", [17, 17, 17], [[], [], []], nested=False, seed=2, segment_files=False)
    (root / "test_v2.0" / "metadata.json").unlink()  # the test split has shard metadata only
    assert main(["data", "info", str(root), "--json"]) == 0
    summaries = {Path(s["path"]).name: s for s in json.loads(capsys.readouterr().out)}
    test = summaries["test_v2.0"]
    assert test["frames"] == 51 and test["shards"] == 3
    assert test["episodes"] == 3 and test["segment_indices"] is False  # each shard taken as one segment
    assert summaries["train_v2.0"]["segment_indices"] is True
    windows = WindowDataset(root / "test_v2.0", source="tokens")
    assert len(windows) == 3 and {windows[i]["segment"] for i in range(3)} == {0, 1, 2}


def test_a_split_missing_only_some_segment_indices_still_fails(onex_root):
    root, _ = onex_root
    (root / "train_v2.0" / "segment_indices" / "segment_idx_1.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"segment_idx_1\.bin: missing"):
        open_split(root / "train_v2.0")


def test_a_segment_running_into_the_next_shard_is_counted_once(tmp_path, capsys):
    from hwm_env.cli import main

    # ids: shard 0 = 0 (frames 0..29), 1 (30..59); shard 1 = 1, 2 (from 20); shard 2 = 2
    write_onex_split(tmp_path / "train", [60, 50, 40], [[30], [20], []], nested=True, continue_segments=True)
    split = open_split(tmp_path / "train")
    assert [s.segment_idx[0] for s in split.shards] == [0, 1, 2]
    assert split.num_episodes == 3
    assert main(["data", "info", str(tmp_path / "train"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3


def onex_window_starts(segment_idx: np.ndarray, length: int, stride: int) -> np.ndarray:
    """1X's rule (1xgpt `data.py`): start i is valid if segment_idx[i] == segment_idx[i + (length-1)*stride]."""
    span = (length - 1) * stride
    starts = np.arange(max(len(segment_idx) - span, 0))
    return starts[segment_idx[starts] == segment_idx[starts + span]]


def test_raw_windows_at_stride_one_follow_the_onex_rule(raw_root):
    root, written = raw_root
    windows = WindowDataset(root / "train_v2.0_raw", num_past=2, num_future=1, source="frames")
    expected = [onex_window_starts(segment_idx, 3, 1) for segment_idx in written["segment_idx"]]
    assert len(windows) == sum(len(starts) for starts in expected)  # 66 + 43; the old rule gave 64 + 42
    starts = [(windows[i]["shard"], windows[i]["start"]) for i in range(len(windows))]
    assert (0, 0) in starts and (0, 40) in starts and (1, 0) in starts


def test_train_masked_on_a_raw_root_says_what_to_do(raw_root, tmp_path, capsys):
    from hwm_env.cli import main

    root, _ = raw_root
    code = main(["train", "masked", "--data", str(root), "--config", "tiny", "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2
    assert "raw MP4 variant" in error and "hwm data encode" in error and "tokenized" in error
    assert "vocab_size" not in error
