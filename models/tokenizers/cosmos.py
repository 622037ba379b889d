"""NVIDIA Cosmos video tokenizers (CV continuous / DV discrete) behind the common interface.

The user downloads a Cosmos checkpoint folder (`encoder.jit`, `decoder.jit`; e.g.
`Cosmos-Tokenizer-DV8x8x8`, the tokenizer of the 1X v2.0 data set) and points
`load_tokenizer` at it; nothing is downloaded here. The resolution frames are encoded at is
the caller's choice (default 256x256, 1X's); a copy of the folder made beside encoded
latents records it in `hwm_settings.json`, so the copy loads at the same size. The JIT graphs take video
[B, 3, T, H, W] in [-1, 1] with T = 1 + 8k (causal: the first latent encodes the first
frame alone) and return `(latent,)` (CV, [B, 16, t, h, w]) or `(indices, codes)` (DV,
indices [B, t, h, w]). They run in bf16 on CUDA, as Cosmos ships them, and fp32 on CPU.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from models.paths import require_folder
from models.tokenizers.base import Tokenizer, check_tokens, unit_to_frames

ENCODER_FILE = "encoder.jit"
DECODER_FILE = "decoder.jit"
UNUSED_FILES = ("autoencoder.jit",)  # Cosmos ships it too; encoder + decoder are the same weights
SETTINGS_FILE = "hwm_settings.json"  # {"image_size": [H, W]}, written into copies of the folder
# e.g. "Cosmos-0.1-Tokenizer-DV8x8x8" -> discrete, 8x temporal, 8x spatial
FOLDER_NAME_PATTERN = re.compile(r"(?<![A-Za-z])([CD])V(\d+)x(\d+)x(\d+)")
DEFAULT_IMAGE_SIZE = (256, 256)  # the 1X data set's Cosmos resolution
COSMOS_TEMPORAL = (4, 8)  # the released CV/DV video models: 4x8x8, 8x8x8, 8x16x16
COSMOS_SPATIAL = (8, 16)


def is_cosmos_folder(path: str | os.PathLike) -> bool:
    """A Cosmos download: either JIT file, or its `config.json` (`"architectures": ["CosmosTokenizer"]`)."""
    path = Path(path)
    if any((path / name).is_file() for name in (ENCODER_FILE, DECODER_FILE, *UNUSED_FILES)):
        return True
    try:
        return "CosmosTokenizer" in json.loads((path / "config.json").read_text()).get("architectures", [])
    except (OSError, ValueError, AttributeError):
        return False


def _first_output(output):
    """Cosmos JIT encoders return a tensor or a tuple whose first item is the latent / indices."""
    if isinstance(output, (tuple, list)):
        if not output:
            raise ValueError("returned an empty tuple")
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise ValueError(f"returned {type(output).__name__}, expected a tensor or a tuple of tensors")
    return output


def _load_jit(path: Path, device: torch.device) -> torch.jit.ScriptModule:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; a Cosmos tokenizer folder needs {ENCODER_FILE} and {DECODER_FILE}: download both "
            f"from the model's Hugging Face repo (e.g. nvidia/Cosmos-0.1-Tokenizer-CV8x8x8) into {path.parent}"
        )
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format Cosmos ships
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: not a loadable TorchScript file ({str(error).splitlines()[0]})") from error
    arguments = [arg.name for arg in module.forward.schema.arguments]
    if len(arguments) != 2:  # (self, x)
        raise ValueError(
            f"{path}: forward takes {arguments[1:]}, expected one input (video [B, 3, T, H, W] for the encoder, "
            "latents or indices for the decoder) like NVIDIA Cosmos' JIT files"
        )
    return module.eval()


class CosmosTokenizer(Tokenizer):
    """A Cosmos CV/DV tokenizer loaded from its JIT files; see the module docstring."""

    def __init__(self, encoder, decoder, kind: str, temporal_compression: int, spatial_compression: int,
                 image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE, latent_channels: int | None = None,
                 vocab_size: int | None = None, source: str = ""):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.kind = kind
        self.temporal_compression = temporal_compression
        self.spatial_compression = spatial_compression
        self.image_size = tuple(image_size)
        self.latent_channels = latent_channels
        self.vocab_size = vocab_size
        self.source = source
        if any(side % spatial_compression for side in self.image_size):
            raise ValueError(f"image_size {self.image_size} must be divisible by the spatial compression {spatial_compression}")

    @property
    def compute_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.device.type == "cuda" else torch.float32

    def to(self, *args, **kwargs):
        """Move, then cast the graphs to the device's dtype (bf16 on CUDA, fp32 elsewhere)."""
        module = super().to(*args, **kwargs)
        for graph in (self.encoder, self.decoder):
            graph.to(self.compute_dtype)
        return module

    @classmethod
    def from_folder(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                    image_size: tuple[int, int] | None = None) -> "CosmosTokenizer":
        """Load `encoder.jit` + `decoder.jit`; kind and compression from the folder name (e.g. DV8x8x8) or a probe."""
        path = require_folder(path, "Cosmos tokenizer")
        device = torch.device(device)
        encoder = _load_jit(path / ENCODER_FILE, device)
        decoder = _load_jit(path / DECODER_FILE, device)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        encoder.to(dtype)
        decoder.to(dtype)
        image_size = tuple(image_size or _saved_image_size(path) or DEFAULT_IMAGE_SIZE)
        probe = _probe(encoder, path / ENCODER_FILE, device, dtype)
        kind, temporal, spatial = probe["kind"], probe["temporal_compression"], probe["spatial_compression"]
        named = FOLDER_NAME_PATTERN.search(path.name)
        if named:
            named_kind = "continuous" if named.group(1) == "C" else "discrete"
            named_temporal, named_spatial = int(named.group(2)), int(named.group(3))
            if (named_kind, named_temporal, named_spatial) != (kind, temporal, spatial):
                raise ValueError(
                    f"{path}: the folder name says {named_kind} {named_temporal}x{named_spatial}x{named_spatial}, "
                    f"but {ENCODER_FILE} produces {kind} {temporal}x{spatial}x{spatial}"
                )
        tokenizer = cls(
            encoder, decoder, kind, temporal, spatial, image_size,
            latent_channels=probe.get("latent_channels"),
            vocab_size=probe.get("vocab_size"), source=str(path),
        )
        return tokenizer.eval()

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        video = frames.permute(0, 4, 1, 2, 3).to(self.compute_dtype).div(127.5).sub(1.0)  # (B, 3, T, H, W)
        output = _first_output(self.encoder(video))
        if self.kind == "continuous":
            return output.float().permute(0, 2, 1, 3, 4).contiguous()  # (B, t, C, h, w)
        return output.long()  # (B, t, h, w)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        if self.kind == "continuous":
            latents = latents.permute(0, 2, 1, 3, 4).to(self.compute_dtype)  # (B, C, t, h, w)
        video = _first_output(self.decoder(latents))  # (B, 3, T, H, W) in [-1, 1]
        return unit_to_frames(video.permute(0, 2, 1, 3, 4))  # (B, T, H, W, 3) uint8

    def describe(self) -> dict:
        return {**super().describe(), "type": "cosmos", "source": self.source}

    def settings_json(self) -> str:
        """The text of SETTINGS_FILE for a copy of this folder (it then loads at this image_size)."""
        return json.dumps({"image_size": list(self.image_size)})


def _saved_image_size(path: Path) -> tuple[int, int] | None:
    settings = path / SETTINGS_FILE
    if not settings.is_file():
        return None
    try:
        height, width = (int(side) for side in json.loads(settings.read_text())["image_size"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{settings}: expected {{\"image_size\": [H, W]}} ({error})") from None
    return height, width


def _probe(encoder, path: Path, device: torch.device, dtype: torch.dtype) -> dict:
    """Run the encoder on 9 black 64x64 frames to learn kind, compression and channels.

    9 frames separate the 4x (3 latents) and 8x (2 latents) temporal models; 64 px is a
    multiple of both spatial factors (8, 16).
    """
    frames, side = 9, 64
    video = torch.zeros(1, 3, frames, side, side, device=device, dtype=dtype)
    try:
        with torch.no_grad():
            output = encoder(video)
    except Exception as error:  # TorchScript raises plain RuntimeErrors for any mismatch
        raise ValueError(
            f"{path}: failed on a probe video [1, 3, {frames}, {side}, {side}] in [-1, 1] "
            f"({str(error).strip().splitlines()[-1]}); expected a Cosmos video encoder"
        ) from error
    try:
        first = _first_output(output)
    except ValueError as error:
        raise ValueError(f"{path}: the encoder {error}") from error
    if first.is_floating_point() and first.ndim == 5:
        info = {"kind": "continuous", "latent_channels": int(first.shape[1])}
        time, height = first.shape[2], first.shape[3]
    elif not first.is_floating_point() and first.ndim == 4:
        info = {"kind": "discrete"}
        time, height = first.shape[1], first.shape[2]
        codes = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
        info["vocab_size"] = _vocab_size(codes)
    else:
        raise ValueError(
            f"{path}: the encoder returned {first.dtype} {tuple(first.shape)}; expected float latents "
            "[B, C, t, h, w] (CV) or integer indices [B, t, h, w] (DV)"
        )
    temporal = (frames - 1) // (time - 1) if time > 1 and (frames - 1) % (time - 1) == 0 else None
    spatial = side // height if side % height == 0 else None
    if temporal not in COSMOS_TEMPORAL or spatial not in COSMOS_SPATIAL:
        raise ValueError(
            f"{path}: the encoder maps video [1, 3, {frames}, {side}, {side}] to {tuple(first.shape)}; "
            f"not a Cosmos video tokenizer (temporal compression {COSMOS_TEMPORAL}, spatial {COSMOS_SPATIAL})"
        )
    info["temporal_compression"], info["spatial_compression"] = temporal, spatial
    return info


# Cosmos DV models quantize 6 channels with FSQ levels (8, 8, 8, 5, 5, 5).
COSMOS_FSQ_LEVELS = (8, 8, 8, 5, 5, 5)


def _vocab_size(codes) -> int:
    """64,000 for the released DV models (6-dim codes); other code widths are not Cosmos releases."""
    if codes is not None and isinstance(codes, torch.Tensor) and codes.ndim == 5 and codes.shape[1] != len(COSMOS_FSQ_LEVELS):
        raise ValueError(f"discrete encoder returned {codes.shape[1]}-dim codes; Cosmos DV uses {len(COSMOS_FSQ_LEVELS)}")
    return int(np.prod(COSMOS_FSQ_LEVELS))


def decode_onex_tokens(video_bin_path: str | os.PathLike, tokenizer: Tokenizer, chunks=None,
                       batch_size: int = 4) -> np.ndarray:
    """Decode 1X v2.0 `video_{i}.bin` token chunks to frames, for looking at the data.

    The file holds int32 (num_chunks, t, h, w) Cosmos DV8x8x8 indices, each chunk an
    independent encoding of 17 frames. `chunks` picks chunks (an int, range or list;
    default all: a whole shard decodes to ~50k frames, so pick). Returns uint8
    (len(chunks) * 17, H, W, 3).
    """
    from tqdm import tqdm

    path = Path(video_bin_path)
    if tokenizer.kind != "discrete" or tokenizer.temporal_compression != 8:
        raise ValueError("1X v2.0 tokens need a discrete 8x temporal tokenizer (Cosmos DV8x8x8)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing")
    latent_time = tokenizer.num_latent_frames(17)
    height, width = tokenizer.latent_grid
    item_bytes = latent_time * height * width * 4
    size = path.stat().st_size
    if size == 0 or size % item_bytes:
        raise ValueError(
            f"{path}: size {size} bytes is not a multiple of one chunk int32 ({latent_time}, {height}, {width}) "
            f"= {item_bytes} bytes; is the tokenizer's image_size {tokenizer.image_size} right?"
        )
    tokens = np.memmap(path, dtype="<i4", mode="r", shape=(size // item_bytes, latent_time, height, width))
    if chunks is None:
        chunks = range(len(tokens))
    elif isinstance(chunks, int):
        chunks = [chunks]
    chunks = list(chunks)
    if any(not 0 <= c < len(tokens) for c in chunks):
        raise ValueError(f"{path}: chunk indices must lie in [0, {len(tokens)}), got {chunks[:5]}...")
    frames = []
    for start in tqdm(range(0, len(chunks), batch_size), desc=f"decode {path.name}", disable=len(chunks) <= batch_size):
        batch = torch.from_numpy(np.stack([tokens[c] for c in chunks[start : start + batch_size]]).astype(np.int64))
        check_tokens(batch, tokenizer.vocab_size, tokenizer.latent_grid)
        frames.append(tokenizer.decode(batch).flatten(0, 1).cpu().numpy())  # (n * 17, H, W, 3)
    return np.concatenate(frames)
