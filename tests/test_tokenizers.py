"""Tokenizers: the built-in autoencoder (continuous + FSQ), FSQ itself, the Cosmos adapter, bad input."""
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.tokenizers import (
    FSQ, AutoencoderConfig, ConvTokenizer, CosmosTokenizer, decode_onex_tokens, load_tokenizer,
)
from models.tokenizers.autoencoder import psnr_of_images
from models.tokenizers.base import frames_to_unit, unit_to_frames

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

# the tiny preset's architecture (train/configs/tokenizer/tiny.yaml)
TINY = dict(pixel_shuffle=2, channels=[16, 16, 32], res_blocks=1, bottleneck_blocks=0, norm_groups=4)


def tiny_tokenizer(quantizer: str) -> ConvTokenizer:
    return ConvTokenizer(AutoencoderConfig(quantizer=quantizer, **TINY)).eval()


def random_frames(*shape) -> torch.Tensor:
    return torch.randint(0, 256, (*shape, 3), dtype=torch.uint8)


@pytest.fixture(scope="module")
def sim_frames() -> np.ndarray:
    """8 head-camera frames (64x64) from two short HWM-Sim-v0 episodes."""
    from hwm_env.sim.env import HWMSimEnv
    from hwm_env.sim.exploration import ExplorationPolicy
    from hwm_env.sim.rendering import RenderingUnavailableError

    try:
        env = HWMSimEnv(resolution=64)
    except RenderingUnavailableError as error:
        pytest.skip(f"MuJoCo rendering unavailable: {error}")
    frames = []
    for seed in (0, 1):
        env.reset(seed=seed)
        policy = ExplorationPolicy(env, seed=seed)
        for _ in range(4):
            for _ in range(3):  # a few control steps apart, so the frames differ
                env.step(policy(env))
            frames.append(env.render_frame())
    env.close()
    return np.stack(frames)


@pytest.fixture
def one_thread():
    """Tiny convolutions gain nothing from a second thread, and lose a lot on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- built-in autoencoder ------------------------------------------------------------------

def test_continuous_encode_decode_shapes_and_range():
    tokenizer = tiny_tokenizer("continuous")
    assert (tokenizer.kind, tokenizer.temporal_compression, tokenizer.spatial_compression) == ("continuous", 1, 8)
    assert tokenizer.latent_channels == 8 and tokenizer.image_size == (64, 64)
    frames = random_frames(2, 3, 64, 64)
    latents = tokenizer.encode(frames)
    assert latents.shape == (2, 3, 8, 8, 8) and latents.dtype == torch.float32 and latents.is_contiguous()
    assert latents.abs().max() <= 1.0  # tanh-bounded: unit scale for Flow-HWM
    decoded = tokenizer.decode(latents)
    assert decoded.shape == (2, 3, 64, 64, 3) and decoded.dtype == torch.uint8
    # numpy in, same answer; frames are independent (per-frame tokenizer)
    assert torch.equal(tokenizer.encode(frames.numpy()), latents)
    assert torch.allclose(tokenizer.encode(frames[:1, 1:2]), latents[:1, 1:2], atol=1e-5)


def test_fsq_tokenizer_encode_decode_shapes():
    tokenizer = tiny_tokenizer("fsq")
    assert tokenizer.kind == "discrete" and tokenizer.vocab_size == 1000
    tokens = tokenizer.encode(random_frames(2, 2, 64, 64))
    assert tokens.shape == (2, 2, 8, 8) and tokens.dtype == torch.int64
    assert 0 <= int(tokens.min()) and int(tokens.max()) < 1000
    decoded = tokenizer.decode(tokens)
    assert decoded.shape == (2, 2, 64, 64, 3) and decoded.dtype == torch.uint8
    # decode(tokens) is the network's reconstruction through the quantized codes
    images = frames_to_unit(decoded[0, :1])
    codes = tokenizer.bottleneck(images)
    assert torch.equal(tokenizer.fsq.codes_to_indices(codes.movedim(1, -1)), tokenizer.encode(decoded[:1, :1])[0])


def test_decode_digits_matches_tokens_on_the_grid_and_blends_between():
    tokenizer = tiny_tokenizer("fsq")  # levels [8, 5, 5, 5]
    tokens = tokenizer.encode(random_frames(1, 2, 64, 64))
    digits = (tokens.unsqueeze(-1) // tokenizer.fsq.basis) % tokenizer.fsq.levels.long()  # (1, 2, 8, 8, 4)
    assert torch.equal(tokenizer.decode_digits(digits.float()), tokenizer.decode(tokens))
    # an off-grid point decodes through the same affine code map, between its neighbours' codes
    half = digits.float().clone()
    half[..., 0] = half[..., 0].clamp(max=6) + 0.5
    codes = tokenizer.fsq.digits_to_codes(half).movedim(-1, 2).flatten(0, 1)
    with torch.no_grad():
        expected = unit_to_frames(tokenizer.decoder(codes)).unflatten(0, (1, 2))
    assert torch.equal(tokenizer.decode_digits(half), expected)
    with pytest.raises(ValueError, match=r"\(B, T', 8, 8, 4\)"):
        tokenizer.decode_digits(torch.zeros(1, 1, 8, 8, 3))
    with pytest.raises(ValueError, match=r"within \[0, level - 1\]"):
        tokenizer.decode_digits(torch.full((1, 1, 8, 8, 4), 7.5))
    with pytest.raises(ValueError, match="cannot decode FSQ digits"):
        tiny_tokenizer("continuous").decode_digits(torch.zeros(1, 1, 8, 8, 4))


def test_architecture_parameter_count_of_default_is_small():
    from omegaconf import OmegaConf

    preset = OmegaConf.to_container(OmegaConf.load("train/configs/tokenizer/default.yaml"))
    tokenizer = ConvTokenizer(AutoencoderConfig(**preset["model"]))
    assert 0.5e6 < tokenizer.num_parameters() < 4e6
    assert tokenizer.latent_grid == (8, 8)


@pytest.mark.parametrize("quantizer", ["continuous", "fsq"])
def test_short_overfit_on_sim_frames_improves_psnr(sim_frames, quantizer, one_thread):
    torch.manual_seed(0)
    tokenizer = ConvTokenizer(AutoencoderConfig(quantizer=quantizer, **TINY))
    images = frames_to_unit(torch.from_numpy(sim_frames))  # (8, 3, 64, 64)
    optimizer = torch.optim.Adam(tokenizer.parameters(), lr=5e-3)
    with torch.no_grad():
        before = psnr_of_images(tokenizer(images), images)
    for _ in range(30):
        loss = (tokenizer(images) - images).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tokenizer.eval()
    reconstruction = tokenizer.decode(tokenizer.encode(sim_frames[None]))[0]  # through the uint8 interface
    mse = ((reconstruction.float() - torch.from_numpy(sim_frames).float()) ** 2).mean()
    after = float(10 * torch.log10(255**2 / mse))
    assert after > before + 2.0, (before, after)


# --- FSQ -----------------------------------------------------------------------------------

def test_fsq_index_code_round_trip_and_code_count():
    fsq = FSQ([8, 5, 5, 5])
    assert fsq.codebook_size == 1000 and fsq.dim == 4
    indices = torch.arange(1000)
    codes = fsq.indices_to_codes(indices)  # (1000, 4)
    assert codes.shape == (1000, 4) and codes.min() == -1.0 and codes.max() == 1.0
    assert len(torch.unique(codes, dim=0)) == 1000  # every index is its own grid point
    assert torch.equal(fsq.codes_to_indices(codes), indices)
    # quantizing a grid point returns it: pre-activations that land on the bin centres
    levels = torch.tensor([8.0, 5.0, 5.0, 5.0])
    digits = (codes + 1) / 2 * (levels - 1)
    pre = torch.logit((digits + 0.5) / levels)
    assert torch.allclose(fsq(pre), codes, atol=1e-5)


def test_fsq_cosmos_levels_basis_and_straight_through_gradient():
    fsq = FSQ([8, 8, 8, 5, 5, 5])
    assert fsq.codebook_size == 64000
    assert fsq.basis.tolist() == [1, 8, 64, 512, 2560, 12800]  # Cosmos' mixed-radix order
    assert fsq.codes_to_indices(fsq.indices_to_codes(torch.tensor([0, 1, 63999]))).tolist() == [0, 1, 63999]
    z = torch.randn(5, 6, requires_grad=True)
    codes = fsq(z)
    codes.sum().backward()
    assert z.grad is not None and (z.grad != 0).all()  # straight-through, not the zero gradient of round()
    assert set(torch.unique(fsq.codes_to_digits(codes)[:, 3]).tolist()) <= {0, 1, 2, 3, 4}


def test_fsq_rejects_bad_levels_and_widths():
    with pytest.raises(ValueError, match="levels"):
        FSQ([8, 1])
    with pytest.raises(ValueError, match="4 channels"):
        FSQ([8, 5, 5, 5])(torch.zeros(2, 3))


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "frames, message",
    [
        (torch.zeros(1, 2, 64, 64, 3), "uint8"),
        (torch.zeros(2, 64, 64, 3, dtype=torch.uint8), r"\(B, T, 64, 64, 3\)"),
        (torch.zeros(1, 2, 64, 64, 4, dtype=torch.uint8), r"\(B, T, 64, 64, 3\)"),
        (torch.zeros(1, 2, 32, 32, 3, dtype=torch.uint8), "expects 64x64"),
        (torch.zeros(1, 0, 64, 64, 3, dtype=torch.uint8), "empty"),
        ([[0]], "torch tensor or numpy array"),
    ],
)
def test_encode_rejects_bad_frames(frames, message):
    with pytest.raises(ValueError, match=message):
        tiny_tokenizer("continuous").encode(frames)


def test_decode_rejects_bad_latents_and_tokens():
    continuous, discrete = tiny_tokenizer("continuous"), tiny_tokenizer("fsq")
    with pytest.raises(ValueError, match=r"\(B, T', 8, 8, 8\)"):
        continuous.decode(torch.zeros(1, 1, 4, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        continuous.decode(torch.full((1, 1, 8, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="floating point"):
        continuous.decode(torch.zeros(1, 1, 8, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        discrete.decode(torch.full((1, 1, 8, 8), 1000))
    with pytest.raises(ValueError, match="integers"):
        discrete.decode(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, T', 8, 8\)"):
        discrete.decode(torch.zeros(1, 8, 8, dtype=torch.int64))


def test_config_rejects_bad_architecture():
    with pytest.raises(ValueError, match="quantizer"):
        AutoencoderConfig(quantizer="vq")
    with pytest.raises(ValueError, match="divisible"):
        AutoencoderConfig(image_size=[60, 64])
    with pytest.raises(ValueError, match=r"decoder_extra_blocks must be \[\] or 3 counts >= 0"):
        AutoencoderConfig(decoder_extra_blocks=[1, 1])
    with pytest.raises(ValueError, match=r"decoder_extra_blocks must be \[\] or 3 counts >= 0"):
        AutoencoderConfig(decoder_extra_blocks=[1, -1, 0])


@pytest.mark.parametrize("quantizer", ["continuous", "fsq"])
def test_grown_decoder_starts_as_the_trained_one_and_keeps_its_latents(tmp_path, quantizer):
    """decoder_extra_blocks: a trained tokenizer's weights load (the new blocks stay at their identity
    initialisation), reconstructions are unchanged, the encoder is untouched, and the new blocks train."""
    trained = tiny_tokenizer(quantizer)
    with torch.no_grad():  # stand-in for training: no residual branch at zero
        for parameter in trained.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    grown = ConvTokenizer(AutoencoderConfig(quantizer=quantizer, **TINY, decoder_extra_blocks=[2, 1, 0])).eval()
    missing, unexpected = grown.load_state_dict(trained.state_dict(), strict=False)
    assert not unexpected and missing and all(name.startswith("decoder.extra.") for name in missing)
    assert grown.num_parameters() > trained.num_parameters()
    frames = random_frames(1, 3, 64, 64)
    latents = trained.encode(frames)
    assert torch.equal(grown.encode(frames), latents)
    assert torch.equal(grown.decode(latents), trained.decode(latents))
    grown.train()
    images = frames_to_unit(frames[0])
    F.mse_loss(grown(images), images).backward()
    new_weights = [parameter for name, parameter in grown.named_parameters() if name.startswith("decoder.extra.")]
    assert any(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in new_weights)
    grown.save(tmp_path / "grown")
    assert torch.equal(load_tokenizer(tmp_path / "grown").decode(latents), grown.eval().decode(latents))


# --- checkpoints -----------------------------------------------------------------------------

@pytest.mark.parametrize("quantizer", ["continuous", "fsq"])
def test_checkpoint_round_trip_through_load_tokenizer(tmp_path, quantizer):
    tokenizer = tiny_tokenizer(quantizer)
    tokenizer.save(tmp_path / "tok")
    config = json.loads((tmp_path / "tok" / "config.json").read_text())
    assert config["family"] == "tokenizer" and config["quantizer"] == quantizer
    assert config["kind"] == ("continuous" if quantizer == "continuous" else "discrete")
    assert config["image_size"] == [64, 64] and config["model"]["channels"] == TINY["channels"]
    loaded = load_tokenizer(tmp_path / "tok")
    frames = random_frames(1, 2, 64, 64)
    assert torch.equal(loaded.encode(frames), tokenizer.encode(frames))
    assert not loaded.training


def test_checkpoint_missing_file_or_mismatched_config_fails_clearly(tmp_path):
    tiny_tokenizer("continuous").save(tmp_path / "tok")
    broken = tmp_path / "no_weights"
    shutil.copytree(tmp_path / "tok", broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_tokenizer(broken)

    mismatched = tmp_path / "mismatched"
    shutil.copytree(tmp_path / "tok", mismatched)
    config = json.loads((mismatched / "config.json").read_text())
    config["model"]["channels"] = [16, 32, 32]
    (mismatched / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match config.json"):
        load_tokenizer(mismatched)

    config["model"]["channels"] = TINY["channels"]
    config["quantizer"] = "fsq"
    (mismatched / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="quantizer"):
        load_tokenizer(mismatched)

    config["family"] = "flow"
    (mismatched / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="expected a 'tokenizer' checkpoint"):
        load_tokenizer(mismatched)

    with pytest.raises(FileNotFoundError, match="neither an existing folder"):
        load_tokenizer(tmp_path / "nowhere")


# --- Cosmos adapter on scripted stand-ins -----------------------------------------------------

COSMOS_LEVELS = [8, 8, 8, 5, 5, 5]


class PoolingVideoEncoder(nn.Module):
    """Cosmos CV call signature: [B, 3, T, H, W] in [-1, 1] -> ([B, 16, 1 + (T-1)/t, H/s, W/s],).

    Latent channels 0-2 are the pooled RGB, so the test can check value range and channel order.
    """

    def __init__(self, temporal: int, spatial: int):
        super().__init__()
        self.temporal, self.spatial = temporal, spatial
        self.scale = nn.Parameter(torch.ones(1))

    def pooled(self, video: torch.Tensor) -> torch.Tensor:
        first = F.avg_pool3d(video[:, :, :1], (1, self.spatial, self.spatial))
        if video.shape[2] > 1:
            rest = F.avg_pool3d(video[:, :, 1:], (self.temporal, self.spatial, self.spatial))
            first = torch.cat([first, rest], dim=2)
        return first * self.scale  # (B, 3, t, h, w)

    def forward(self, video: torch.Tensor):
        rgb = self.pooled(video)
        padding = torch.zeros(rgb.shape[0], 13, rgb.shape[2], rgb.shape[3], rgb.shape[4], dtype=rgb.dtype)
        return (torch.cat([rgb, padding], dim=1),)


class RepeatingVideoDecoder(nn.Module):
    """Inverse of the encoder above: latents [B, 16, t, h, w] -> video [B, 3, 1 + (t-1)T, H, W]."""

    def __init__(self, temporal: int, spatial: int):
        super().__init__()
        self.temporal, self.spatial = temporal, spatial
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, latents: torch.Tensor):
        return self.expand(latents[:, :3])

    def expand(self, rgb: torch.Tensor) -> torch.Tensor:
        rgb = rgb * self.scale
        video = torch.cat([rgb[:, :, :1], rgb[:, :, 1:].repeat_interleave(self.temporal, dim=2)], dim=2)
        return video.repeat_interleave(self.spatial, dim=3).repeat_interleave(self.spatial, dim=4)


class DiscreteVideoEncoder(PoolingVideoEncoder):
    """Cosmos DV call signature: video -> (indices [B, t, h, w], codes [B, 6, t, h, w]); FSQ (8,8,8,5,5,5)."""

    def forward(self, video: torch.Tensor):
        rgb = self.pooled(video)
        digits = torch.round((rgb.clamp(-1, 1) + 1) / 2 * 7)  # three 8-level digits
        middle = torch.full_like(digits, 2.0)  # three 5-level digits at 0
        all_digits = torch.cat([digits, middle], dim=1)  # (B, 6, t, h, w)
        basis = torch.tensor([1, 8, 64, 512, 2560, 12800], dtype=torch.long).view(1, 6, 1, 1, 1)
        indices = (all_digits.long() * basis).sum(dim=1)
        levels = torch.tensor([8.0, 8.0, 8.0, 5.0, 5.0, 5.0]).view(1, 6, 1, 1, 1)
        return indices, all_digits / (levels - 1) * 2 - 1


class DiscreteVideoDecoder(RepeatingVideoDecoder):
    def forward(self, indices: torch.Tensor):
        digits = torch.stack([(indices // 1) % 8, (indices // 8) % 8, (indices // 64) % 8], dim=1).float()
        return self.expand(digits / 7 * 2 - 1)  # RGB (B, 3, t, h, w) in [-1, 1]


class TwoInputs(nn.Module):
    def forward(self, video: torch.Tensor, extra: torch.Tensor):
        return video + extra


class Identity(nn.Module):
    def forward(self, video: torch.Tensor):
        return video


def write_cosmos_folder(folder, encoder: nn.Module, decoder: nn.Module):
    folder.mkdir(parents=True)
    torch.jit.script(encoder).save(str(folder / "encoder.jit"))
    torch.jit.script(decoder).save(str(folder / "decoder.jit"))
    (folder / "config.json").write_text(json.dumps({"architectures": ["CosmosTokenizer"]}))
    return folder


@pytest.fixture
def cv_folder(tmp_path):
    return write_cosmos_folder(tmp_path / "Cosmos-0.1-Tokenizer-CV8x8x8", PoolingVideoEncoder(8, 8),
                               RepeatingVideoDecoder(8, 8))


def test_cosmos_continuous_adapter_shapes_range_and_rgb_order(cv_folder):
    tokenizer = load_tokenizer(cv_folder, image_size=(64, 64))
    assert isinstance(tokenizer, CosmosTokenizer)
    assert (tokenizer.kind, tokenizer.temporal_compression, tokenizer.spatial_compression) == ("continuous", 8, 8)
    assert tokenizer.latent_channels == 16
    frames = torch.zeros(2, 17, 64, 64, 3, dtype=torch.uint8)
    frames[..., 0] = 255  # pure red
    latents = tokenizer.encode(frames)
    assert latents.shape == (2, 3, 16, 8, 8) and latents.dtype == torch.float32
    # [0, 255] -> [-1, 1], RGB order kept: channel 0 (red) at +1, green and blue at -1
    assert torch.allclose(latents[:, :, 0], torch.ones(()), atol=1e-6)
    assert torch.allclose(latents[:, :, 1:3], -torch.ones(()), atol=1e-6)
    decoded = tokenizer.decode(latents)
    assert decoded.shape == (2, 17, 64, 64, 3) and decoded.dtype == torch.uint8
    assert torch.equal(decoded, frames)
    assert tokenizer.encode(frames[:, :1]).shape == (2, 1, 16, 8, 8)  # T = 1 is 1 + 8 * 0


def test_cosmos_rejects_frame_counts_that_are_not_one_plus_8k(cv_folder):
    tokenizer = load_tokenizer(cv_folder, image_size=(64, 64))
    with pytest.raises(ValueError, match=r"1 \+ 8k"):
        tokenizer.encode(torch.zeros(1, 16, 64, 64, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="expects 64x64"):
        tokenizer.encode(torch.zeros(1, 9, 32, 32, 3, dtype=torch.uint8))


def test_cosmos_discrete_adapter_probe_without_name_and_16x_spatial(tmp_path):
    folder = write_cosmos_folder(tmp_path / "my_tokenizer", DiscreteVideoEncoder(8, 16), DiscreteVideoDecoder(8, 16))
    tokenizer = CosmosTokenizer.from_folder(folder, image_size=(64, 64))
    assert (tokenizer.kind, tokenizer.temporal_compression, tokenizer.spatial_compression) == ("discrete", 8, 16)
    assert tokenizer.vocab_size == 64000
    frames = torch.full((1, 9, 64, 64, 3), 255, dtype=torch.uint8)
    tokens = tokenizer.encode(frames)
    assert tokens.shape == (1, 2, 4, 4) and tokens.dtype == torch.int64
    assert int(tokens[0, 0, 0, 0]) == 7 + 7 * 8 + 7 * 64 + 2 * (512 + 2560 + 12800)
    assert torch.equal(tokenizer.decode(tokens), frames)


def test_cosmos_folder_name_must_agree_with_the_probe(tmp_path):
    folder = write_cosmos_folder(tmp_path / "Cosmos-Tokenizer-DV8x16x16", DiscreteVideoEncoder(8, 8),
                                 DiscreteVideoDecoder(8, 8))
    with pytest.raises(ValueError, match="folder name says discrete 8x16x16"):
        CosmosTokenizer.from_folder(folder)


def test_cosmos_bad_jit_files_fail_clearly(tmp_path):
    two_inputs = write_cosmos_folder(tmp_path / "two", TwoInputs(), RepeatingVideoDecoder(8, 8))
    with pytest.raises(ValueError, match="forward takes"):
        CosmosTokenizer.from_folder(two_inputs)
    identity = write_cosmos_folder(tmp_path / "identity", Identity(), RepeatingVideoDecoder(8, 8))
    with pytest.raises(ValueError, match="not a Cosmos video tokenizer"):
        CosmosTokenizer.from_folder(identity)
    missing = write_cosmos_folder(tmp_path / "missing", PoolingVideoEncoder(8, 8), RepeatingVideoDecoder(8, 8))
    (missing / "decoder.jit").unlink()
    with pytest.raises(FileNotFoundError, match="decoder.jit"):
        load_tokenizer(missing)
    corrupt = write_cosmos_folder(tmp_path / "corrupt", PoolingVideoEncoder(8, 8), RepeatingVideoDecoder(8, 8))
    (corrupt / "encoder.jit").write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="encoder.jit"):
        load_tokenizer(corrupt)


def test_decode_onex_tokens_from_a_v2_token_file(tmp_path):
    folder = write_cosmos_folder(tmp_path / "Cosmos-Tokenizer-DV8x8x8", DiscreteVideoEncoder(8, 8),
                                 DiscreteVideoDecoder(8, 8))
    tokenizer = load_tokenizer(folder)  # 256x256, the 1X resolution: 32x32 token grid
    assert tokenizer.latent_grid == (32, 32)
    generator = torch.Generator().manual_seed(0)
    chunks = torch.randint(0, 64000, (3, 3, 32, 32), generator=generator, dtype=torch.int64)
    video_bin = tmp_path / "video_0.bin"
    chunks.numpy().astype("<i4").tofile(video_bin)
    frames = decode_onex_tokens(video_bin, tokenizer, chunks=[2, 0])
    assert frames.shape == (34, 256, 256, 3) and frames.dtype == np.uint8
    expected = tokenizer.decode(chunks[[2, 0]]).flatten(0, 1).numpy()
    assert np.array_equal(frames, expected)
    truncated = tmp_path / "video_1.bin"
    truncated.write_bytes(video_bin.read_bytes()[:-4])
    with pytest.raises(ValueError, match="not a multiple of one chunk"):
        decode_onex_tokens(truncated, tokenizer)
    with pytest.raises(ValueError, match="discrete 8x temporal"):
        decode_onex_tokens(video_bin, tiny_tokenizer("fsq"))
