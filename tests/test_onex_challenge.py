"""The 1X World Model Challenge 2025 tracks: the top-500 rule on known inputs, the submission files'
exact format, and both protocols end to end on fixture shards with tiny checkpoints and scripted
Cosmos stand-ins."""
import json
import math
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from env_fixtures import build_flow_checkpoint
from onex_fixtures import (
    build_onex_flow_checkpoint,
    build_onex_masked_checkpoint,
    code_token,
    frame_latent_time,
    latent_code,
    write_coded_onex_pair,
    write_onex_split,
)
from test_tokenizers import (
    DiscreteVideoDecoder,
    DiscreteVideoEncoder,
    PoolingVideoEncoder,
    RepeatingVideoDecoder,
    write_cosmos_folder,
)

from models.data.open import open_split
from train import onex_challenge
from train.onex_challenge import (
    README_KEYS,
    TOP_K,
    UNIFORM_CROSS_ENTROPY,
    VOCAB_SIZE,
    evaluate_compression,
    sampling_schedule,
    top_k_cross_entropy,
    top_k_log_probs,
    write_sample_file,
    write_submission,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


# --- the top-500 rule ------------------------------------------------------------------------

def test_top_500_cross_entropy_on_known_inputs():
    assert UNIFORM_CROSS_ENTROPY == pytest.approx(11.07, abs=0.005)
    targets = torch.tensor([5, 63999, 12345])
    # all the mass on the true token: ~0
    sure = torch.full((3, VOCAB_SIZE), -30.0)
    sure[torch.arange(3), targets] = 30.0
    indices, values = top_k_log_probs(sure, None)
    assert indices.shape == values.shape == (3, TOP_K) and (indices[:, 0] == targets).all()
    assert top_k_cross_entropy(indices, values, targets).max() < 1e-6
    # uniform: ln 64000 for a listed and an unlisted target alike
    indices, values = top_k_log_probs(torch.zeros(3, VOCAB_SIZE), None)
    listed_target = indices[:, 7]
    unlisted_target = torch.tensor([int(np.setdiff1d(np.arange(VOCAB_SIZE), row)[0]) for row in indices.numpy()])
    for chosen in (listed_target, unlisted_target):
        ce = top_k_cross_entropy(indices, values, chosen)
        np.testing.assert_allclose(ce, math.log(VOCAB_SIZE), atol=1e-4)
    # listed mass 0.9: an unlisted target shares the remaining 0.1 with 63,500 codes
    listed = torch.arange(TOP_K)[None].repeat(2, 1)
    values = torch.full((2, TOP_K), math.log(0.9 / TOP_K))
    ce = top_k_cross_entropy(listed, values, torch.tensor([TOP_K + 3, 2]))
    assert ce[0].item() == pytest.approx(-math.log(0.1 / (VOCAB_SIZE - TOP_K)), rel=1e-6)  # 13.36
    assert ce[1].item() == pytest.approx(-math.log(0.9 / TOP_K), rel=1e-6)
    # all the mass listed and the target not: the floor caps the penalty at -log(1e-6 / 63500)
    full = torch.full((1, TOP_K), -math.log(TOP_K))
    capped = top_k_cross_entropy(listed[:1], full, torch.tensor([VOCAB_SIZE - 1]))
    assert capped.item() == pytest.approx(-math.log(1e-6 / (VOCAB_SIZE - TOP_K)), rel=1e-6)  # 24.9


def test_factorised_top_k_is_exact():
    levels = [8, 8, 8, 5, 5, 5]
    logits = torch.randn(4, sum(levels), generator=torch.Generator().manual_seed(0)) * 3
    indices, values = top_k_log_probs(logits, levels)
    digits = [part.log_softmax(-1) for part in logits.split(levels, dim=-1)]
    basis = np.cumprod([1] + levels[:-1])
    ids = np.arange(VOCAB_SIZE)
    joint = sum(digits[i][:, (ids // basis[i]) % level] for i, level in enumerate(levels))  # (4, 64000)
    expected = joint.topk(TOP_K, dim=-1)
    torch.testing.assert_close(values, expected.values)
    assert (indices == expected.indices).all()
    assert (values[:, :-1] >= values[:, 1:]).all()


# --- submission files -------------------------------------------------------------------------

def test_submission_files_have_the_validator_format(tmp_path):
    rng = np.random.default_rng(0)
    shape = (3, 32, 32, TOP_K)
    for sample_id in ("0", "1"):
        write_sample_file(tmp_path, sample_id, rng.integers(0, VOCAB_SIZE, shape), rng.normal(size=shape))
    readme = {key: f"{key} value" for key in README_KEYS}
    archive = write_submission(tmp_path, readme, ["0", "1"])
    assert archive.name == "submission.zip"
    with zipfile.ZipFile(archive) as opened:
        assert sorted(opened.namelist()) == ["0.npz", "1.npz", "README.txt"]  # flat, nothing else
        assert json.loads(opened.read("README.txt")) == readme
        assert list(json.loads(opened.read("README.txt"))) == list(README_KEYS)
        for name in ("0.npz", "1.npz"):
            with opened.open(name) as handle:
                data = np.load(handle)
                assert sorted(data.files) == ["indices", "values"]
                assert data["indices"].shape == shape and data["indices"].dtype == np.int32
                assert data["values"].shape == shape and data["values"].dtype == np.float32
                assert 0 <= data["indices"].min() and data["indices"].max() < VOCAB_SIZE
    with pytest.raises(ValueError, match=r"expected \(3, 32, 32, 500\)"):
        write_sample_file(tmp_path, "2", np.zeros((3, 32, 32, 499)), np.zeros((3, 32, 32, 499)))
    with pytest.raises(ValueError, match="outside"):
        write_sample_file(tmp_path, "2", np.full(shape, VOCAB_SIZE), np.zeros(shape))
    with pytest.raises(ValueError, match="missing.*e-mail"):
        write_submission(tmp_path, {key: "" for key in README_KEYS if key != "e-mail"}, ["0"])


# --- compression end to end -------------------------------------------------------------------

@pytest.fixture(scope="module")
def masked_checkpoint(tmp_path_factory):
    return build_onex_masked_checkpoint(tmp_path_factory.mktemp("masked") / "masked")


def test_compression_track_end_to_end(masked_checkpoint, tmp_path, capsys):
    from hwm_env.cli import main

    val = tmp_path / "val_v2.0"
    written = write_onex_split(val, [120], [[60]], nested=False)  # chunk pairs (0,1), (1,2), (4,5), (5,6)
    out, submission = tmp_path / "compression.json", tmp_path / "submission"
    assert main(["eval", "onex-compression", "--checkpoint", str(masked_checkpoint), "--data", str(val),
                 "--samples", "3", "--json", str(out), "--submission", str(submission), "--team", "Tiny",
                 "--email", "tiny@example.org", "--device", "cpu"]) == 0
    results = json.loads(out.read_text())
    assert results["scored"] and results["samples"] == 3 and results["sample_ids"] == ["0", "1", "2"]
    assert len(results["per_grid"]) == 3 and results["uniform_cross_entropy"] == pytest.approx(11.07, abs=0.005)
    assert abs(results["top500_cross_entropy"] - UNIFORM_CROSS_ENTROPY) < 1.0  # an untrained model is near uniform
    assert np.isfinite(results["full_cross_entropy"])
    # the score is the score of the files written: recompute it from the zip and the true next chunks
    tokens = written["tokens"][0]
    total = 0.0
    with zipfile.ZipFile(results["submission"]) as archive:
        readme = json.loads(archive.read("README.txt"))
        assert readme["team"] == "Tiny" and readme["e-mail"] == "tiny@example.org" and list(readme) == list(README_KEYS)
        for sample_id, (shard, chunk) in zip(results["sample_ids"], results["sample_chunks"]):
            with archive.open(f"{sample_id}.npz") as handle:
                data = np.load(handle)
                total += float(top_k_cross_entropy(data["indices"], data["values"], tokens[chunk + 1]).sum())
    assert total / (3 * 3 * 32 * 32) == pytest.approx(results["top500_cross_entropy"], rel=1e-9)
    assert all(0 <= chunk and chunk + 1 <= 6 and chunk != 2 for _, chunk in results["sample_chunks"])

    # a test-style split (one chunk per sample, no targets): files only, IDs = the shard numbers
    test = tmp_path / "test_v2.0"
    write_onex_split(test, [17, 17, 17], [[], [], []], nested=False)
    assert main(["eval", "onex-compression", "--checkpoint", str(masked_checkpoint), "--data", str(test),
                 "--submission", str(tmp_path / "test-submission"), "--json", str(out), "--device", "cpu"]) == 0
    results = json.loads(out.read_text())
    assert not results["scored"] and results["sample_ids"] == ["0", "1", "2"] and "top500_cross_entropy" not in results
    with zipfile.ZipFile(results["submission"]) as archive:
        assert sorted(archive.namelist()) == ["0.npz", "1.npz", "2.npz", "README.txt"]
    capsys.readouterr()
    assert main(["eval", "onex-compression", "--checkpoint", str(masked_checkpoint), "--data", str(test),
                 "--future-actions", "true", "--device", "cpu"]) == 2
    assert "needs the target chunk's states" in capsys.readouterr().err


def test_compression_with_a_three_grid_future_and_bad_models(tmp_path):
    from models.loading import load_world_model

    val = tmp_path / "val_v2.0"
    write_onex_split(val, [51], [[]], nested=False)
    model = load_world_model(build_onex_masked_checkpoint(tmp_path / "three", num_past=3, num_future=3))
    results = evaluate_compression(model, open_split(val), samples=None, future_actions="true", progress=False)
    assert results["samples"] == 2 and len(results["per_grid"]) == 3 and np.isfinite(results["top500_cross_entropy"])
    wide = SimpleNamespace(family="masked", num_past=4,
                           config=SimpleNamespace(vocab_size=VOCAB_SIZE, token_grid=[32, 32]))
    with pytest.raises(ValueError, match="num_past=4"):
        evaluate_compression(wide, val, progress=False)
    with pytest.raises(ValueError, match="Masked-HWM"):
        evaluate_compression(SimpleNamespace(family="flow"), val, progress=False)


# --- sampling end to end ----------------------------------------------------------------------

def test_sampling_schedule_reaches_frame_77():
    context, future = sampling_schedule(8, num_past=2)
    assert [(s.first, s.last) for s in context] == [(0, 0), (1, 8), (9, 16)]
    assert [(s.first, s.last) for s in future] == [
        (17, 17), (18, 25), (26, 33), (34, 34), (35, 42), (43, 50), (51, 51), (52, 59), (60, 67), (68, 68), (69, 76)]
    context, future = sampling_schedule(1, num_past=2, frame_stride=4)
    assert [(s.first, s.last) for s in context] == [(9, 12), (13, 16)]
    assert len(future) == 15 and future[-1].last == 76
    with pytest.raises(ValueError, match="frame_stride 7"):
        sampling_schedule(1, num_past=2, frame_stride=7)
    with pytest.raises(ValueError, match="num_past=4"):
        sampling_schedule(8, num_past=4)


class SamplingOracle(torch.nn.Module):
    """Reads the frame numbers off the states (states[f, 0] = f, [f, 1] = shard) and predicts the
    colour code of the last frame each future latent covers."""

    family, num_past, num_future, action_dim = "masked", 2, 1, 25
    config = SimpleNamespace(past_action_tokens=None)

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.slots = sampling_schedule(8, self.num_past)[1]

    def rollout(self, past, past_actions, future_actions, **options):
        rows = []
        for actions in future_actions:
            grids = []
            for slot, action in zip(self.slots, actions):
                last = int(round(float(action[0]) + (slot.last - slot.first) / 2))  # mean frame -> last frame
                code = latent_code(int(round(float(action[1]))), last // 17, frame_latent_time(last))
                grids.append(torch.full((32, 32), code_token(code)))
            rows.append(torch.stack(grids))
        return torch.stack(rows)


def test_sampling_track_end_to_end_both_families(tmp_path):
    from hwm_env.cli import main
    from models.tokenizers import load_tokenizer

    # windows of 77 frames: shard 0 has one segment of 78 frames; in shard 1 a segment of exactly 77 frames
    # starts at frame 17, a chunk boundary, so there the stand-in reconstructs frame 77 exactly
    coded = write_coded_onex_pair(tmp_path / "data", [78, 94], [[], [17]])
    dv = write_cosmos_folder(tmp_path / "Cosmos-Tokenizer-DV8x8x8", DiscreteVideoEncoder(8, 8),
                             DiscreteVideoDecoder(8, 8))
    cv = write_cosmos_folder(tmp_path / "Cosmos-Tokenizer-CV8x8x8", PoolingVideoEncoder(8, 8),
                             RepeatingVideoDecoder(8, 8))
    tokenizer = load_tokenizer(dv)
    oracle = onex_challenge.evaluate_sampling(SamplingOracle(), tokenizer, coded["raw_dir"], progress=False)
    assert oracle["samples"] == 2 and oracle["windows"][1] == [1, 17] and oracle["latents_rolled_out"] == 11
    assert min(oracle["sample_psnr"]) > 35 and oracle["copy_last_psnr"] < oracle["psnr"] - 10
    assert oracle["sample_recon_psnr"][1] > 35
    assert oracle["winner_psnr"] == 23.0 and oracle["image_size"] == [256, 256]

    masked = build_onex_masked_checkpoint(tmp_path / "masked")
    flow = build_onex_flow_checkpoint(tmp_path / "flow", cv)
    out = tmp_path / "sampling.json"
    for arguments in (["--checkpoint", str(masked), "--tokenizer", str(dv)], ["--checkpoint", str(flow)]):
        assert main(["eval", "onex-sampling", *arguments, "--data", str(coded["raw_dir"]), "--json", str(out),
                     "--steps", "1", "--device", "cpu"]) == 0
        results = json.loads(out.read_text())
        assert results["target_frame"] == 76 and results["context_frames"] == 17 and results["samples"] == 2
        assert np.isfinite([results["psnr"], results["ssim"], results["copy_last_psnr"]]).all()
        assert results["sample_recon_psnr"][1] > 35  # both stand-ins reconstruct the coded frames
    # a per-frame tokenizer (64 px) at frame stride 4: 2 context latents (frames 12, 16), 15 rolled out to frame 76
    per_frame = build_flow_checkpoint(tmp_path / "flow-stride-4", frame_stride=4)
    assert main(["eval", "onex-sampling", "--checkpoint", str(per_frame), "--data", str(coded["raw_dir"]),
                 "--json", str(out), "--device", "cpu"]) == 0
    results = json.loads(out.read_text())
    assert results["image_size"] == [64, 64] and results["latents_rolled_out"] == 15 and results["samples"] == 2
    assert np.isfinite([results["psnr"], results["recon_psnr"], results["copy_last_psnr"]]).all()  # untrained
