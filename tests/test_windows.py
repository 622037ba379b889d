"""Windows over hwm-v1 splits: segment boundaries, frame stride on one clock, sources, statistics."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from models.data.hwm_format import HWMDataset, HWMWriter, write_encoding
from models.data.windows import WindowDataset, action_statistics

EPISODES = (10, 25, 6)


def frame_code(index: int) -> np.ndarray:
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    frame[..., 0], frame[..., 1] = index % 256, index // 256
    return frame


@pytest.fixture
def split(tmp_path):
    """Frames encode their global index; actions[t] = (t, segment, 0/1 grip, constant)."""
    path = tmp_path / "train"
    with HWMWriter(path, 4, 4, action_dim=4, fps=30, action_names=["index", "segment", "grip", "const"],
                   binary_action_dims=[2]) as writer:
        offset = 0
        for episode, length in enumerate(EPISODES):
            index = np.arange(offset, offset + length)
            frames = np.stack([frame_code(i) for i in index])
            actions = np.stack([index, np.full(length, episode), index % 2, np.full(length, 7.0)], axis=1)
            writer.add_episode(frames, actions.astype(np.float32))
            offset += length
    return HWMDataset(path)


def decode(frames: torch.Tensor) -> list[int]:
    return (frames[:, 0, 0, 0].long() + 256 * frames[:, 0, 0, 1].long()).tolist()


def test_frame_windows_stride_one(split):
    windows = WindowDataset(split, num_past=2, num_future=1, source="frames")
    assert len(windows) == sum(n - 3 for n in EPISODES)  # the first frame needs the action into it
    for index in range(len(windows)):
        item = windows[index]
        raw = decode(torch.cat([item["past_frames"], item["future_frames"]]))
        start = item["start"]
        assert raw == [start, start + 1, start + 2]
        assert item["past_frames"].dtype == torch.uint8 and item["past_frames"].shape == (2, 4, 4, 3)
        actions = torch.cat([item["past_actions"], item["future_actions"]])
        # the action into frame r is the action of frame r-1, from the same episode
        assert actions[:, 0].tolist() == [r - 1 for r in raw]
        assert (actions[:, 1] == item["segment"]).all()
        assert split.segment_idx[start - 1] == split.segment_idx[start + 2] == item["segment"]


@pytest.mark.parametrize("pooling", ["mean", "none"])
def test_frame_stride_subsamples_actions_on_the_same_clock(split, pooling):
    windows = WindowDataset(split, num_past=2, num_future=2, source="frames", frame_stride=3, action_pooling=pooling)
    # 4 frames 3 apart + the 3 actions before the first: only the 25-frame episode fits (25 - 13 + 1 starts)
    assert len(windows) == 13
    for index in range(len(windows)):
        item = windows[index]
        raw = decode(torch.cat([item["past_frames"], item["future_frames"]]))
        assert raw == [item["start"] + 3 * i for i in range(4)]
        actions = torch.cat([item["past_actions"], item["future_actions"]])
        if pooling == "none":
            assert actions.shape == (4, 3, 4)
            assert actions[:, :, 0].tolist() == [[r - 3, r - 2, r - 1] for r in raw]
        else:
            assert actions.shape == (4, 4)
            assert actions[:, 0].tolist() == [r - 2 for r in raw]
        assert (actions[..., 1] == 1).all()  # all from episode 1


def test_latent_and_token_sources(split):
    num_frames = len(split)
    latents = np.broadcast_to(np.arange(num_frames, dtype=np.float32)[:, None, None, None], (num_frames, 2, 3, 3))
    write_encoding(split.path, "latents", latents, {"latent_channels": 2})
    tokens = np.broadcast_to(np.arange(num_frames)[:, None, None] + 100, (num_frames, 3, 3))
    write_encoding(split.path, "tokens", tokens, {"vocab_size": 256})
    reopened = HWMDataset(split.path)
    latent_windows = WindowDataset(reopened, num_past=3, num_future=1, source="latents", frame_stride=2)
    item = latent_windows[5]
    assert item["past_latents"].dtype == torch.float32 and item["past_latents"].shape == (3, 2, 3, 3)
    assert item["future_latents"].shape == (1, 2, 3, 3)
    start = item["start"]
    assert item["past_latents"][:, 1, 2, 0].tolist() == [start, start + 2, start + 4]
    assert item["future_latents"][0, 0, 0, 0].item() == start + 6
    token_windows = WindowDataset(reopened, source="tokens")
    item = token_windows[0]
    assert item["past_tokens"].dtype == torch.int64 and item["future_tokens"].shape == (1, 3, 3)
    assert item["past_tokens"][:, 0, 0].tolist() == [item["start"] + 100, item["start"] + 101]


def test_batches_collate(split):
    loader = DataLoader(WindowDataset(split, source="frames"), batch_size=4, shuffle=True)
    batch = next(iter(loader))
    assert batch["past_frames"].shape == (4, 2, 4, 4, 3) and batch["future_actions"].shape == (4, 1, 4)
    assert batch["segment"].shape == (4,) and batch["start"].dtype == torch.int64


def test_window_requests_that_cannot_be_served(split):
    with pytest.raises(ValueError, match=r"train: no window of 20 past \+ 8 future.*needs 29 consecutive frames.*longest segment has 25 frames"):
        WindowDataset(split, num_past=20, num_future=8, source="frames")
    with pytest.raises(ValueError, match="train: no pre-encoded latents"):
        WindowDataset(split, source="latents")
    with pytest.raises(ValueError, match="source 'pixels'"):
        WindowDataset(split, source="pixels")
    with pytest.raises(ValueError, match="action_pooling 'max'"):
        WindowDataset(split, source="frames", action_pooling="max")
    with pytest.raises(IndexError):
        WindowDataset(split, source="frames")[10**6]


def test_action_statistics(split):
    mean, std, binary = action_statistics(split)
    actions = np.asarray(split.actions, dtype=np.float64)
    assert binary == [2]
    np.testing.assert_allclose(mean[:2], actions[:, :2].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std[:2], actions[:, :2].std(axis=0), rtol=1e-5)
    assert (mean[2], std[2]) == (0.0, 1.0)  # binary: left as 0/1
    assert (mean[3], std[3]) == (7.0, 1.0)  # constant: std 1, not a near-zero divisor
    assert mean.dtype == np.float32 and std.dtype == np.float32


def test_window_dataset_accepts_a_path(split):
    assert len(WindowDataset(split.path, source="frames")) == len(WindowDataset(split, source="frames"))


def test_pickled_windows_reopen_the_split(split):
    """Spawned DataLoader workers get the dataset by pickle: it must re-open, not copy, the memmaps."""
    import pickle

    windows = WindowDataset(split, num_past=2, num_future=2, source="frames", frame_stride=3, action_pooling="none")
    payload = pickle.dumps(windows)
    assert len(payload) < split.frames.nbytes  # the frames were not copied into the pickle
    clone = pickle.loads(payload)
    assert len(clone) == len(windows)
    for key, value in windows[4].items():
        assert torch.equal(torch.as_tensor(clone[4][key]), torch.as_tensor(value)), key
