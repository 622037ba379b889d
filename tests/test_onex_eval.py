"""Pixel evaluation with temporal (Cosmos 8x) tokenizers: predicted latents are decoded inside their
causal chunks and compared with the raw frames they cover, for both families through one path.

The data are colour-coded token + raw pairs (tests/onex_fixtures.py): a latent's token decodes,
through the scripted Cosmos DV stand-in, to exactly the colour of the raw frames it covers, so
an oracle that predicts the true next latent scores the tokenizer's reconstruction, which is
high only when the frames compared are the ones the latent covers.
"""
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from onex_fixtures import (
    build_onex_flow_checkpoint,
    build_onex_masked_checkpoint,
    code_digits,
    code_of_token,
    code_token,
    write_coded_onex_pair,
)
from test_tokenizers import (
    DiscreteVideoDecoder,
    DiscreteVideoEncoder,
    PoolingVideoEncoder,
    RepeatingVideoDecoder,
    write_cosmos_folder,
)

from models.data.windows import WindowDataset
from models.tokenizers import load_tokenizer
from train.evaluation import (
    chunk_layout,
    evaluate_latent_windows,
    evaluate_world_model,
    load_for_evaluation,
    open_raw_frames,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

# shard 0: 120 frames, a segment change at 60 inside chunk 3 (51..67), which is dropped; shard 1: 86 frames
FRAMES, BOUNDARIES = [120, 86], [[60], []]


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    root = tmp_path_factory.mktemp("onex-eval")
    written = write_coded_onex_pair(root / "data", FRAMES, BOUNDARIES)
    written["dv"] = write_cosmos_folder(root / "Cosmos-Tokenizer-DV8x8x8", DiscreteVideoEncoder(8, 8),
                                        DiscreteVideoDecoder(8, 8))
    written["cv"] = write_cosmos_folder(root / "Cosmos-Tokenizer-CV8x8x8", PoolingVideoEncoder(8, 8),
                                        RepeatingVideoDecoder(8, 8))
    return written


def code_latent(code: int) -> torch.Tensor:
    """The CV stand-in's latent of a code's colour: channels 0-2 = RGB in [-1, 1], 13 zero channels."""
    latent = torch.zeros(16, 32, 32)
    latent[:3] = (torch.tensor(code_digits(code), dtype=torch.float32) / 7 * 2 - 1).view(3, 1, 1)
    return latent


def latent_code_of(latent: torch.Tensor) -> int:
    red, green, blue = (int(round((float(latent[c].mean()) + 1) / 2 * 7)) for c in range(3))
    return red + 8 * green + 64 * blue


class CodeOracle(torch.nn.Module):
    """Predicts the true next latents of the colour code (n -> n + 1, n + 2, ...); ignores actions."""

    def __init__(self, family: str, num_past: int = 2, num_future: int = 1):
        super().__init__()
        self.family, self.num_past, self.num_future, self.action_dim = family, num_past, num_future, 25
        self.config = SimpleNamespace(readout="tokens")
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a device to run on

    def rollout(self, past, past_actions, future_actions, *, generator=None, **options):
        horizon = future_actions.shape[1]
        rows = []
        for last in past[:, -1]:
            code = code_of_token(int(last[0, 0])) if self.family == "masked" else latent_code_of(last)
            if self.family == "masked":
                rows.append(torch.stack([torch.full((32, 32), code_token(code + 1 + h)) for h in range(horizon)]))
            else:
                rows.append(torch.stack([code_latent(code + 1 + h) for h in range(horizon)]))
        return torch.stack(rows)


def test_masked_oracle_on_1x_tokens_scores_the_reconstruction(coded):
    tokenizer = load_tokenizer(coded["dv"])
    results = evaluate_world_model(CodeOracle("masked"), tokenizer, coded["tokens_dir"], 1, episodes=8,
                                   batch_size=2, progress=False)
    assert results["episodes"] == 3  # three segments; the raw twin val_v2.0_raw was found beside the tokens
    assert results["frames_source"].endswith("val_v2.0_raw") and results["temporal_compression"] == 8
    assert results["frames_per_horizon"] == [3 * 8]  # latent 2 of a chunk covers its frames 9..16
    assert results["psnr"] == results["recon_psnr"] and results["psnr"][0] > 35
    assert results["copy_last_psnr"][0] < results["psnr"][0] - 10  # frame 8 shows the code before
    for shard, segment, start in results["windows"]:
        assert start % 17 == 0  # every window is one whole chunk
    json.dumps(results, allow_nan=False)


def test_windows_inside_and_across_chunks_decode_from_the_chunk_opening(coded):
    tokenizer = load_tokenizer(coded["dv"])
    split = coded["tokens_dir"]
    one_past = WindowDataset(split, num_past=1, num_future=1, source="tokens")
    layout = chunk_layout(one_past, 1, 8)  # window [latent 1] -> latent 2 of chunk 0
    assert layout.prefix.shape == (1, 32, 32) and code_of_token(int(layout.prefix[0, 0, 0])) == 0
    assert layout.raw_index.tolist() == [0, 8, 16] and layout.starts.tolist() == [True, False, False]
    frames = open_raw_frames(one_past.split, tokenizer.image_size)
    for model, windows in ((CodeOracle("masked", num_past=1), one_past),
                           (CodeOracle("masked"), WindowDataset(split, num_past=2, num_future=2, source="tokens",
                                                                cross_chunks=True))):
        results = evaluate_latent_windows(model, tokenizer, windows, frames, windows.num_future, episodes=8,
                                          seed=3, batch_size=2, progress=False)
        assert results["psnr"] == results["recon_psnr"] and min(results["psnr"]) > 35
    across = chunk_layout(windows, 2, 8)  # [l2, l0'] -> [l1', l2']: the prefix l0, l1 opens chunk 0
    assert len(across.prefix) == 2 and across.raw_index.tolist() == [0, 8, 16, 17, 25, 33]
    assert across.starts.tolist() == [True, False, False, True, False, False]


def test_flow_on_encoded_cv_latents_runs_the_same_path(coded, tmp_path):
    """hwm data encode (CV stand-in) beside a 1X raw split, then the same evaluation for a Flow-HWM."""
    from hwm_env.cli import main

    raw = shutil.copytree(coded["raw_dir"], tmp_path / "val_v2.0_raw")
    assert main(["data", "encode", "--tokenizer", str(coded["cv"]), "--data", str(raw), "--device", "cpu"]) == 0
    oracle = evaluate_world_model(CodeOracle("flow"), load_tokenizer(coded["cv"]), raw, 1, episodes=8,
                                  batch_size=2, progress=False)
    assert oracle["episodes"] == 3 and oracle["frames_source"] == str(raw)
    # continuous latents keep the MP4's colour noise, so the reconstruction is exact and the oracle's ideal
    # colours come close; both only when the frames compared are the ones each latent covers
    assert oracle["recon_psnr"][0] > 60 and oracle["psnr"][0] > 35 > oracle["copy_last_psnr"][0]
    # a checkpoint with the paper's action window (9 past + 8 future per-frame tokens) through the CLI
    checkpoint = build_onex_flow_checkpoint(tmp_path / "flow", coded["cv"])
    out = tmp_path / "eval.json"
    assert main(["eval", "model", "--checkpoint", str(checkpoint), "--data", str(raw), "--horizon", "1",
                 "--episodes", "8", "--steps", "1", "--json", str(out), "--device", "cpu"]) == 0
    results = json.loads(out.read_text())
    assert results["recon_psnr"] == oracle["recon_psnr"] and results["frames_per_horizon"] == [24]
    for key in ("psnr", "ssim", "sharpness", "copy_last_psnr", "delta_psnr"):
        assert np.isfinite(results[key]).all(), key


def test_cli_eval_model_on_a_1x_masked_checkpoint(coded, tmp_path, capsys):
    from hwm_env.cli import main

    checkpoint = build_onex_masked_checkpoint(tmp_path / "masked")
    out = tmp_path / "eval.json"
    arguments = ["eval", "model", "--checkpoint", str(checkpoint), "--data", str(coded["tokens_dir"]),
                 "--horizon", "1", "--json", str(out), "--episodes", "2", "--device", "cpu"]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert "tokenizer null" in error and "--tokenizer" in error
    assert main(arguments + ["--tokenizer", str(coded["dv"])]) == 0
    results = json.loads(out.read_text())
    assert results["horizons"] == [1] and results["episodes"] == 2 and results["frames_per_horizon"] == [16]
    assert results["tokenizer"] == str(coded["dv"]) and results["recon_psnr"][0] > 35
    for key in ("psnr", "ssim", "sharpness", "copy_last_psnr", "delta_psnr"):
        assert np.isfinite(results[key]).all(), key
    # the raw frames elsewhere: --frames names them, and their absence is an error that says so
    moved = shutil.copytree(coded["tokens_dir"], tmp_path / "tokens" / "val_v2.0")
    capsys.readouterr()
    assert main(arguments[:5] + [str(moved)] + arguments[6:] + ["--tokenizer", str(coded["dv"])]) == 2
    assert "--frames" in capsys.readouterr().err
    assert main(arguments[:5] + [str(moved)] + arguments[6:] + ["--tokenizer", str(coded["dv"]),
                                                                "--frames", str(coded["raw_dir"])]) == 0
    assert json.loads(out.read_text())["psnr"] == results["psnr"]


def test_tokenizers_that_do_not_fit_the_checkpoint_fail_clearly(coded, tmp_path):
    checkpoint = build_onex_masked_checkpoint(tmp_path / "masked")
    with pytest.raises(FileNotFoundError, match="tokenizer null.*--tokenizer"):
        load_for_evaluation(checkpoint)
    with pytest.raises(ValueError, match="needs a discrete tokenizer"):
        load_for_evaluation(checkpoint, coded["cv"])
    four = write_cosmos_folder(tmp_path / "Cosmos-Tokenizer-DV4x8x8", DiscreteVideoEncoder(4, 8),
                               DiscreteVideoDecoder(4, 8))
    with pytest.raises(ValueError, match="temporal compression 8 .*compresses time by 4"):
        load_for_evaluation(checkpoint, four)
    tokenizer = load_tokenizer(coded["dv"])
    with pytest.raises(ValueError, match="holds tokens, not frames"):
        evaluate_world_model(CodeOracle("masked"), tokenizer, coded["tokens_dir"], 1, frames=coded["tokens_dir"],
                             progress=False)
    with pytest.raises(ValueError, match="readout 'mean'"):
        evaluate_world_model(CodeOracle("masked"), tokenizer, coded["tokens_dir"], 1, readout="mean", progress=False)
    with pytest.raises(ValueError, match="cross_chunks=True"):
        evaluate_world_model(CodeOracle("masked"), tokenizer, coded["tokens_dir"], 2, progress=False)
