"""The state probe (models/probe.py, hwm train probe) and the object positions it reads from sim data."""
import json

import numpy as np
import pytest
import torch

from models.checkpoint import SHIPPED_CHECKPOINTS, save_checkpoint
from models.data.hwm_format import OBJECT_POSITIONS_FILE, HWMDataset, HWMWriter
from models.probe import ProbeConfig, StateProbe, load_probe

NAMES = ["A", "B", "C"]


def small_probe(names=NAMES, image_size=(64, 64)) -> StateProbe:
    probe = StateProbe(ProbeConfig(image_size=list(image_size), channels=[8, 8, 8, 8], feature_dim=16,
                                   norm_groups=4, target_names=list(names)))
    torch.nn.init.normal_(probe.head.weight)  # a zero head would make every prediction the mean
    probe.set_target_statistics(np.arange(len(names)), np.full(len(names), 2.0))
    return probe


def write_split(path, names=NAMES, size=64, frames=6, object_position_names=None):
    rng = np.random.default_rng(0)
    with HWMWriter(path, size, size, action_dim=len(names), fps=15, action_names=names, state_dim=len(names),
                   object_position_names=object_position_names) as writer:
        positions = None if object_position_names is None else np.zeros((frames, len(object_position_names)))
        writer.add_episode(rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8),
                           np.zeros((frames, len(names))), rng.normal(size=(frames, len(names))),
                           object_positions=positions)
    return HWMDataset(path)


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory):
    from hwm_env.sim.commands import generate_dataset

    root = tmp_path_factory.mktemp("probe_sim") / "data"
    generate_dataset(root, episodes=16, steps=40, seed=1, val_fraction=0.25, progress=False)
    return root


def test_round_trip_gives_identical_predictions(tmp_path):
    probe = small_probe()
    frames = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    save_checkpoint(tmp_path / "probe", probe.state_dict(), probe.checkpoint_config())
    loaded = load_probe(tmp_path / "probe")
    assert loaded.target_names == NAMES and loaded.image_size == (64, 64)
    np.testing.assert_array_equal(loaded.target_mean, [0, 1, 2])
    np.testing.assert_array_equal(loaded.target_std, [2, 2, 2])
    np.testing.assert_array_equal(loaded.predict(frames), probe.predict(frames))
    assert loaded.predict(torch.from_numpy(frames), batch_size=2).shape == (5, 3)
    features = loaded.features(frames, batch_size=2)
    assert features.dtype == torch.float32 and features.shape == (5, 16)
    torch.testing.assert_close(features, probe.features(frames, batch_size=2), rtol=0, atol=0)
    assert "probe-default" in SHIPPED_CHECKPOINTS


def test_bad_inputs_are_refused_naming_both_sides(tmp_path):
    probe = small_probe()
    with pytest.raises(ValueError, match=r"64x64.*32x32"):
        probe.predict(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        probe.features(np.zeros((2, 64, 64, 3), np.float32))
    other_layout = write_split(tmp_path / "other", names=["X", "Y", "Z"])
    with pytest.raises(ValueError, match=r"'X'.*'A'"):
        probe.targets_of(other_layout)
    other_size = write_split(tmp_path / "small", size=32)
    with pytest.raises(ValueError, match=r"32x32.*64x64"):
        probe.targets_of(other_size)
    np.testing.assert_array_equal(probe.targets_of(write_split(tmp_path / "same")).shape, (6, 3))


def test_data_sets_without_object_positions_still_load(tmp_path):
    old = write_split(tmp_path / "old")
    assert old.object_positions is None and old.object_position_names is None
    assert "object_position_names" not in json.loads((tmp_path / "old" / "metadata.json").read_text())
    assert not (tmp_path / "old" / OBJECT_POSITIONS_FILE).exists()
    new = write_split(tmp_path / "new", object_position_names=["P_X", "P_Y"])
    assert new.object_positions.shape == (6, 2) and new.object_position_names == ["P_X", "P_Y"]
    with pytest.raises(ValueError, match="object_positions: missing"):
        with HWMWriter(tmp_path / "bad", 64, 64, 3, 15, NAMES, object_position_names=["P"]) as writer:
            writer.add_episode(np.zeros((1, 64, 64, 3), np.uint8), np.zeros((1, 3)))


def test_sim_data_records_what_the_env_gives(sim_data):
    """The files hold exactly what HWMSimEnv gives for the episode's seeds: frames, actions and
    states as before object positions were added, and info["object_positions"]."""
    from hwm_env.sim.env import OBJECT_POSITION_NAMES, HWMSimEnv
    from hwm_env.sim.exploration import ExplorationPolicy

    split = HWMDataset(sim_data / "train")
    assert (sim_data / "train" / OBJECT_POSITIONS_FILE).is_file()
    assert split.object_position_names == list(OBJECT_POSITION_NAMES) and split.object_positions.shape == (480, 12)
    env = HWMSimEnv()
    reset_seed, policy_seed = np.random.SeedSequence(1).spawn(16)[0].generate_state(2)
    observation, info = env.reset(seed=int(reset_seed))
    policy = ExplorationPolicy(env, seed=int(policy_seed))
    for t in range(10):
        action = policy.act()
        np.testing.assert_array_equal(split.frames[t], observation)
        np.testing.assert_array_equal(split.actions[t], action.astype(np.float32))
        np.testing.assert_array_equal(split.states[t], info["state"])
        np.testing.assert_array_equal(split.object_positions[t], info["object_positions"])
        observation, _, _, _, info = env.step(action)
    env.close()
    assert (split.object_positions[:, 2::3] > 0).mean() > 0.9  # z forward: the objects are mostly in front


def test_tiny_probe_reads_the_neck_pitch_off_held_out_frames(sim_data, tmp_path):
    from train.commands.probe import evaluate_probe, train_probe

    final = train_probe(sim_data, "tiny", tmp_path / "run")
    probe = load_probe(final)
    assert probe.target_names[-12:] == HWMDataset(sim_data / "train").object_position_names
    result = evaluate_probe(probe, HWMDataset(sim_data / "val"))
    ratio = result["mae"]["NECK_PITCH"] / result["train_mean_mae"]["NECK_PITCH"]
    assert ratio < 0.75, result
