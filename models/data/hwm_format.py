"""The `hwm-v1` on-disk format: one folder per split, raw little-endian arrays + metadata.json.

Splits are memory-mapped, never loaded whole, so a 100-hour data set trains on a laptop.
The writer streams episodes into a temp folder beside the target and renames it into place
only when every file is complete; the reader checks each file's size against the metadata
(a memmap given a smaller shape silently reads a prefix) and fails naming the file.

| file              | dtype   | shape        |
|-------------------|---------|--------------|
| `metadata.json`   |         |              |
| `frames.bin`      | uint8   | (N, H, W, 3) |
| `actions.bin`     | float32 | (N, A)       |
| `states.bin`      | float32 | (N, S)       |  (optional)
| `segment_idx.bin` | int32   | (N,)         |  non-decreasing episode id
| `object_positions.bin` | float32 | (N, P)  |  (optional) what the frame shows of the objects, named by
|                   |         |              |  metadata `object_position_names` (simulator: camera-frame x, y, z per object)

Pre-encoded latents (`latents.bin` float16 (N', C, h, w)) or tokens (`tokens.bin` int32
(N', h, w)) sit beside a split (hwm-v1 or 1X v2.0 raw) with a JSON describing them and a
copy of the tokenizer checkpoint, written by `EncodingWriter` (resumable) or
`write_encoding`; a temporal tokenizer's JSON also maps every latent to the frames it
covers (see "pre-encoded latents / tokens" below).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from models.atomic import atomic_write_text, swap_into_place
from models.paths import require_folder

FORMAT = "hwm-v1"
METADATA_FILE = "metadata.json"
FRAMES_FILE = "frames.bin"
ACTIONS_FILE = "actions.bin"
STATES_FILE = "states.bin"
SEGMENTS_FILE = "segment_idx.bin"
OBJECT_POSITIONS_FILE = "object_positions.bin"
REQUIRED_KEYS = ("format", "num_frames", "height", "width", "fps", "action_dim", "action_names", "state_dim", "source")

# kind -> (array file, JSON file, tokenizer folder, on-disk dtype, dims per item)
ENCODINGS = {
    "latents": ("latents.bin", "latents.json", "latents_tokenizer", np.dtype("<f2"), 3),  # (N', C, h, w)
    "tokens": ("tokens.bin", "tokens.json", "tokens_tokenizer", np.dtype("<i4"), 2),  # (N', h, w)
}


# --- writing --------------------------------------------------------------------------

def _check_float_array(name: str, array, num_rows: int, width: int) -> np.ndarray:
    """Validate a (T, width) real-valued array; return it as contiguous float32."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
        raise ValueError(f"{name}: dtype {array.dtype}, expected float32")
    if array.shape != (num_rows, width):
        raise ValueError(f"{name}: shape {array.shape}, expected ({num_rows}, {width})")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
        raise ValueError(f"{name}: contains NaN or inf (rows {rows[:5].tolist()})")
    return array


class HWMWriter:
    """Write an `hwm-v1` split episode by episode; the folder appears only when complete.

    with HWMWriter(out_dir, 64, 64, action_dim=25, fps=30, action_names=names) as writer:
        writer.add_episode(frames, actions, states)   # (T,H,W,3) uint8, (T,A), (T,S) | None

    `object_position_names` (P names) adds the optional `object_positions.bin`: then every
    `add_episode` takes `object_positions` (T, P) too.

    Each episode gets the next segment id; `continues=True` appends to the previous episode
    instead, so a long episode can be streamed in pieces. On an exception inside the block the temp folder
    is deleted and `out_dir` is left as it was; on success an existing `out_dir` is replaced.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        height: int,
        width: int,
        action_dim: int,
        fps: float,
        action_names: Sequence[str],
        state_dim: int | None = None,
        source: str = "unknown",
        binary_action_dims: Sequence[int] = (),
        extra_metadata: dict[str, Any] | None = None,
        object_position_names: Sequence[str] | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.height, self.width, self.action_dim = int(height), int(width), int(action_dim)
        self.state_dim = None if state_dim is None else int(state_dim)
        self.fps = float(fps)
        self.action_names = [str(name) for name in action_names]
        self.source = str(source)
        self.binary_action_dims = sorted(int(d) for d in binary_action_dims)
        self.extra_metadata = dict(extra_metadata or {})
        self.object_position_names = (
            None if object_position_names is None else [str(name) for name in object_position_names]
        )
        if self.object_position_names is not None and not self.object_position_names:
            raise ValueError(f"HWMWriter({self.out_dir}): object_position_names is empty; pass None for no positions")
        if min(self.height, self.width, self.action_dim) <= 0 or self.fps <= 0:
            raise ValueError(
                f"HWMWriter({self.out_dir}): height, width, action_dim and fps must be positive, got "
                f"{self.height}, {self.width}, {self.action_dim}, {self.fps}"
            )
        if len(self.action_names) != self.action_dim:
            raise ValueError(
                f"HWMWriter({self.out_dir}): {len(self.action_names)} action_names for action_dim {self.action_dim}"
            )
        if any(not 0 <= d < self.action_dim for d in self.binary_action_dims):
            raise ValueError(
                f"HWMWriter({self.out_dir}): binary_action_dims {self.binary_action_dims} outside [0, {self.action_dim})"
            )
        self.num_frames = 0
        self.num_episodes = 0
        self._files: dict[str, Any] = {}
        self._tmp_dir: Path | None = None

    def __enter__(self) -> "HWMWriter":
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_dir = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.tmp-", dir=self.out_dir.parent))
        os.chmod(self._tmp_dir, 0o755)  # mkdtemp makes it private; a data set is meant to be shared
        names = [FRAMES_FILE, ACTIONS_FILE, SEGMENTS_FILE] + ([STATES_FILE] if self.state_dim is not None else [])
        names += [OBJECT_POSITIONS_FILE] if self.object_position_names is not None else []
        self._files = {name: open(self._tmp_dir / name, "wb") for name in names}
        return self

    def add_episode(self, frames, actions, states=None, continues: bool = False, object_positions=None) -> None:
        """Append one episode: frames (T,H,W,3) uint8, actions (T,A) float, states (T,S) float or None,
        object_positions (T,P) float (only and always when the writer has object_position_names).

        continues: these frames extend the previous episode (same segment id).
        """
        if self._tmp_dir is None:
            raise RuntimeError("HWMWriter.add_episode called outside its `with` block")
        if continues and self.num_episodes == 0:
            raise ValueError("add_episode(continues=True): there is no previous episode to continue")
        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise ValueError(f"frames: dtype {frames.dtype}, expected uint8 RGB")
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise ValueError(f"frames: shape {frames.shape}, expected (T, {self.height}, {self.width}, 3)")
        num_steps = frames.shape[0]
        if num_steps == 0:
            raise ValueError("frames: empty episode (T = 0)")
        actions = _check_float_array("actions", actions, num_steps, self.action_dim)
        if self.state_dim is None:
            if states is not None:
                raise ValueError("states: given, but the writer was created with state_dim=None")
        else:
            if states is None:
                raise ValueError(f"states: missing; the writer was created with state_dim={self.state_dim}")
            states = _check_float_array("states", states, num_steps, self.state_dim)
        if self.object_position_names is None:
            if object_positions is not None:
                raise ValueError("object_positions: given, but the writer was created without object_position_names")
        else:
            if object_positions is None:
                raise ValueError(f"object_positions: missing; the writer was created with "
                                 f"{len(self.object_position_names)} object_position_names")
            object_positions = _check_float_array("object_positions", object_positions, num_steps,
                                                  len(self.object_position_names))
        self._files[FRAMES_FILE].write(np.ascontiguousarray(frames).tobytes())
        self._files[ACTIONS_FILE].write(actions.astype("<f4", copy=False).tobytes())
        if states is not None:
            self._files[STATES_FILE].write(states.astype("<f4", copy=False).tobytes())
        if object_positions is not None:
            self._files[OBJECT_POSITIONS_FILE].write(object_positions.astype("<f4", copy=False).tobytes())
        episode = self.num_episodes - 1 if continues else self.num_episodes
        self._files[SEGMENTS_FILE].write(np.full(num_steps, episode, dtype="<i4").tobytes())
        self.num_frames += num_steps
        self.num_episodes = episode + 1

    def metadata(self) -> dict[str, Any]:
        optional = {} if self.object_position_names is None else {"object_position_names": self.object_position_names}
        return {
            **self.extra_metadata,
            "format": FORMAT,
            "num_frames": self.num_frames,
            "num_episodes": self.num_episodes,
            "height": self.height,
            "width": self.width,
            "fps": self.fps,
            "action_dim": self.action_dim,
            "action_names": self.action_names,
            "binary_action_dims": self.binary_action_dims,
            "state_dim": self.state_dim,
            "source": self.source,
            **optional,
        }

    def __exit__(self, exc_type, exc, tb) -> None:
        for handle in self._files.values():
            handle.close()
        self._files = {}
        tmp_dir, self._tmp_dir = self._tmp_dir, None
        if exc_type is None and self.num_frames == 0:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise ValueError(f"HWMWriter({self.out_dir}): no episodes were added; nothing written")
        if exc_type is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            return
        try:
            # metadata last: a folder with metadata.json is a complete split
            (tmp_dir / METADATA_FILE).write_text(json.dumps(self.metadata(), indent=2))
            swap_into_place(tmp_dir, self.out_dir)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise


def _checked_batch(kind: str, batch) -> np.ndarray:
    """One batch of latents (n, C, h, w) or tokens (n, h, w) as a numpy array, checked for its kind."""
    item_dims = ENCODINGS[kind][4]
    if hasattr(batch, "detach"):  # a torch tensor (bf16 has no numpy dtype)
        batch = batch.detach().cpu()
        batch = (batch.float() if batch.is_floating_point() else batch).numpy()
    batch = np.asarray(batch)
    if batch.ndim != item_dims + 1:
        raise ValueError(f"{kind}: batch shape {batch.shape}, expected {item_dims + 1} dims (N', ...)")
    if kind == "latents":
        if batch.dtype.kind != "f":
            raise ValueError(f"latents: dtype {batch.dtype}, expected a float array")
        batch = batch.astype(np.float32, copy=False)
        if not np.isfinite(batch).all():
            raise ValueError("latents: contain NaN or inf")
        if np.abs(batch).max(initial=0.0) > np.finfo(np.float16).max:
            raise ValueError("latents: values exceed the float16 range")
    else:
        if batch.dtype.kind not in "iu":
            raise ValueError(f"tokens: dtype {batch.dtype}, expected an integer array")
        if batch.size and (batch.min() < 0 or batch.max() > np.iinfo(np.int32).max):
            raise ValueError("tokens: ids must lie in [0, 2^31)")
    return batch


class EncodingWriter:
    """Append pre-encoded `latents` / `tokens` beside a split batch by batch; resumable.

    Batches go to `.latents.bin.partial` (`.tokens.bin.partial`); after each one is synced to
    disk, `.latents.progress.json` records how many items are complete and the digest of
    `plan` (what is encoded, by which tokenizer). A writer opened again with the same plan
    continues after the last complete item (`items_done`); any other partial file is
    discarded. `finish` copies the tokenizer, moves the array into place and writes the JSON
    last: a split with the JSON holds a complete encoding, and until then the previous one.
    """

    def __init__(self, split_dir: str | os.PathLike, kind: str, plan: dict[str, Any] | None = None):
        if kind not in ENCODINGS:
            raise ValueError(f"encoding kind '{kind}', expected one of {sorted(ENCODINGS)}")
        self.split_dir = require_folder(split_dir, "split")
        self.kind = kind
        self.array_name, self.json_name, self.tokenizer_name, self.dtype, _ = ENCODINGS[kind]
        self.partial = self.split_dir / f".{self.array_name}.partial"
        self.progress = self.split_dir / f".{kind}.progress.json"
        self.plan_digest = None if plan is None else plan_digest(plan)
        self.items_done = 0
        self.item_shape: tuple[int, ...] | None = None
        if self.plan_digest is None or not self._resume():
            self.discard()

    def _resume(self) -> bool:
        try:
            note = json.loads(self.progress.read_text())
            items, item_shape = int(note["items"]), tuple(int(x) for x in note["item_shape"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        complete_bytes = items * math.prod(item_shape) * self.dtype.itemsize
        if note.get("plan_digest") != self.plan_digest or not self.partial.is_file() or \
                self.partial.stat().st_size < complete_bytes:
            return False
        os.truncate(self.partial, complete_bytes)  # drop a batch cut off after its bytes, before its note
        self.items_done, self.item_shape = items, item_shape
        return True

    def discard(self) -> None:
        """Forget any partial encoding of this kind."""
        self.partial.unlink(missing_ok=True)
        self.progress.unlink(missing_ok=True)
        self.items_done, self.item_shape = 0, None

    def append(self, batch) -> None:
        """Write one batch (n, C, h, w) latents | (n, h, w) tokens after the items already written."""
        batch = _checked_batch(self.kind, batch)
        if self.item_shape is None:
            self.item_shape = tuple(int(x) for x in batch.shape[1:])
        elif batch.shape[1:] != self.item_shape:
            raise ValueError(f"{self.kind}: batch shape {batch.shape} differs from earlier items {self.item_shape}")
        with open(self.partial, "ab") as handle:
            handle.write(np.ascontiguousarray(batch, dtype=self.dtype).tobytes())
            handle.flush()
            os.fsync(handle.fileno())
        self.items_done += batch.shape[0]
        if self.plan_digest is not None:
            atomic_write_text(self.progress, json.dumps(
                {"plan_digest": self.plan_digest, "items": self.items_done, "item_shape": list(self.item_shape)}))

    def finish(self, description: dict[str, Any], tokenizer_dir: str | os.PathLike | None = None,
               tokenizer_ignore: Sequence[str] = (), tokenizer_notes: dict[str, str] | None = None,
               expected_items: int | None = None) -> Path:
        """Put the encoding in place with its JSON (`description` plus kind, shape, dtype, plan digest).

        The tokenizer folder is copied beside it (without files matching `tokenizer_ignore`,
        plus the text files `tokenizer_notes`). Returns the path of the array file.
        """
        if self.items_done == 0 or self.item_shape is None:
            raise ValueError(f"{self.kind}: nothing to write (no items)")
        if expected_items is not None and self.items_done != expected_items:
            raise ValueError(f"{self.split_dir}: {self.items_done} {self.kind} items written, "
                             f"expected {expected_items}")
        tmp_tokenizer = None
        try:
            if tokenizer_dir is not None:
                tokenizer_dir = require_folder(tokenizer_dir, "tokenizer checkpoint")
                tmp_tokenizer = Path(tempfile.mkdtemp(prefix=f".{self.tokenizer_name}.tmp-", dir=self.split_dir))
                shutil.rmtree(tmp_tokenizer)
                shutil.copytree(tokenizer_dir, tmp_tokenizer, ignore=shutil.ignore_patterns(*tokenizer_ignore))
                for name, text in (tokenizer_notes or {}).items():
                    (tmp_tokenizer / name).write_text(text)
            description = {
                "kind": self.kind,
                "shape": [self.items_done, *self.item_shape],
                "dtype": self.dtype.name,
                "temporal_compression": 1,
                **description,
            }
            if self.plan_digest is not None:
                description["plan_digest"] = self.plan_digest
            # the old JSON goes first, so a crash below leaves "no encoding", never a mismatched one
            (self.split_dir / self.json_name).unlink(missing_ok=True)
            if (self.split_dir / self.tokenizer_name).exists():
                shutil.rmtree(self.split_dir / self.tokenizer_name)
            if tmp_tokenizer is not None:
                os.replace(tmp_tokenizer, self.split_dir / self.tokenizer_name)
                tmp_tokenizer = None
            os.replace(self.partial, self.split_dir / self.array_name)
            atomic_write_text(self.split_dir / self.json_name, json.dumps(description, indent=2))
        finally:
            if tmp_tokenizer is not None:
                shutil.rmtree(tmp_tokenizer, ignore_errors=True)
        self.progress.unlink(missing_ok=True)
        return self.split_dir / self.array_name


def plan_digest(plan: dict[str, Any]) -> str:
    """sha256 of a JSON-able description of an encoding run (what, from which data, by which tokenizer)."""
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


def write_encoding(
    split_dir: str | os.PathLike,
    kind: str,
    arrays: np.ndarray | Iterable[np.ndarray],
    tokenizer_config: dict[str, Any],
    tokenizer_dir: str | os.PathLike | None = None,
    temporal_compression: int = 1,
) -> Path:
    """Write pre-encoded `latents` (N', C, h, w) or `tokens` (N', h, w) beside a split in one go.

    `arrays` is one array or an iterator of batches along N' (so a large split is encoded in
    pieces). With temporal_compression 1 there must be one item per frame of the split. On
    any error the previous encoding of this kind stays as it was (see `EncodingWriter`, which
    `hwm data encode` uses directly to resume).
    Returns the path of the array file.
    """
    writer = EncodingWriter(split_dir, kind)
    if isinstance(arrays, np.ndarray) or hasattr(arrays, "shape"):
        arrays = [arrays]
    try:
        for batch in arrays:
            writer.append(batch)
        expected = None
        metadata_path = writer.split_dir / METADATA_FILE
        if temporal_compression == 1 and metadata_path.is_file():
            expected = json.loads(metadata_path.read_text()).get("num_frames")
            if expected is not None and writer.items_done and writer.items_done != expected:
                raise ValueError(f"{kind}: {writer.items_done} items for {expected} frames in {metadata_path} "
                                 "(temporal_compression 1)")
        return writer.finish({"temporal_compression": int(temporal_compression), "tokenizer": tokenizer_config},
                             tokenizer_dir)
    except BaseException:
        writer.discard()
        raise


# --- reading --------------------------------------------------------------------------

def memmap_checked(path: Path, dtype, shape: tuple[int, ...], what: str) -> np.memmap:
    """Memory-map `path` read-only after checking that its size is exactly prod(shape) items."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing ({what})")
    dtype = np.dtype(dtype)
    expected = math.prod(shape) * dtype.itemsize
    actual = path.stat().st_size
    if actual != expected:
        raise ValueError(
            f"{path}: size {actual} bytes, expected {expected} = {shape} x {dtype.name} ({what}); "
            "the file is truncated or does not match the metadata"
        )
    if expected == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


def check_segment_idx(segment_idx: np.ndarray, path: Path) -> None:
    """Episode ids must be non-decreasing, or windows could silently cross episodes."""
    steps = np.diff(np.asarray(segment_idx, dtype=np.int64))
    if (steps < 0).any():
        where = int(np.flatnonzero(steps < 0)[0])
        raise ValueError(
            f"{path}: segment_idx is not non-decreasing (frame {where + 1} has id {int(segment_idx[where + 1])} "
            f"after {int(segment_idx[where])})"
        )


def check_finite_rows(values: np.ndarray, path: Path, what: str, chunk: int = 1 << 20) -> None:
    """Fail on NaN/inf, reading a big memmap in pieces."""
    for start in range(0, values.shape[0], chunk):
        block = np.asarray(values[start : start + chunk])
        if not np.isfinite(block).all():
            row = start + int(np.flatnonzero(~np.isfinite(block).reshape(len(block), -1).all(axis=1))[0])
            raise ValueError(f"{path}: {what} contain NaN or inf (first at row {row})")


def episode_ranges_of(segment_idx: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal ids in a non-decreasing id array."""
    segment_idx = np.asarray(segment_idx)
    if len(segment_idx) == 0:
        return []
    cuts = np.flatnonzero(np.diff(segment_idx)) + 1
    starts = np.concatenate([[0], cuts])
    stops = np.concatenate([cuts, [len(segment_idx)]])
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing")
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


# --- pre-encoded latents / tokens ------------------------------------------------------
#
# A temporal (causal video) tokenizer encodes independent chunks of `chunk_frames` =
# 1 + k * c frames into 1 + k latents (c = temporal compression). Its JSON adds:
#   chunk_frames       17 for 1X's tokenized release (and `hwm data encode`)
#   latents_per_chunk  1 + k (3 at c = 8)
#   latent_frames      [[a, b], ...]: latent t of a chunk covers the chunk's frames [a, b)
#                      (causal: [[0, 1], [1, 9], [9, 17]] at c = 8, the first frame alone)
#   chunk_runs         [[shard, first_frame, count], ...]: `count` chunks of one shard starting
#                      at first_frame, first_frame + chunk_frames, ...
# Array row L * i + t is latent t of chunk i, chunks in run order. Frame indices are
# shard-local (1X v2.0) or split-wide (hwm-v1, shard 0).
CHUNK_KEYS = ("chunk_frames", "latents_per_chunk", "latent_frames", "chunk_runs")


def chunk_latent_frames(temporal_compression: int, chunk_frames: int) -> list[list[int]]:
    """[a, b) of each latent of a causal chunk: the first frame alone, then groups of c frames."""
    c = int(temporal_compression)
    if c < 2 or chunk_frames < 1 or (chunk_frames - 1) % c:
        raise ValueError(f"a causal video tokenizer with temporal compression {c} encodes 1 + {c}k frames "
                         f"(1, {1 + c}, {1 + 2 * c}, ...); chunks of {chunk_frames} frames do not fit it")
    return [[0, 1]] + [[1 + i * c, 1 + (i + 1) * c] for i in range((chunk_frames - 1) // c)]


def check_chunk_layout(info: dict[str, Any], json_path: Path) -> None:
    """The chunk keys of a temporal encoding's JSON agree with each other and with its shape."""
    c = info.get("temporal_compression")
    missing = [key for key in CHUNK_KEYS if key not in info]
    if missing:
        raise ValueError(f"{json_path}: temporal_compression {c} but no {missing}; encode the split again "
                         "(hwm data encode)")
    chunk_frames, per_chunk = info["chunk_frames"], info["latents_per_chunk"]
    try:
        expected = chunk_latent_frames(c, chunk_frames)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{json_path}: {error}") from None
    if info["latent_frames"] != expected or per_chunk != len(expected):
        raise ValueError(f"{json_path}: latents_per_chunk {per_chunk} and latent_frames {info['latent_frames']}; "
                         f"a causal {c}x tokenizer on {chunk_frames}-frame chunks gives {len(expected)}: {expected}")
    runs = info["chunk_runs"]
    if not isinstance(runs, list) or not all(
            isinstance(run, list) and len(run) == 3 and all(isinstance(x, int) for x in run)
            and run[0] >= 0 and run[1] >= 0 and run[2] >= 1 for run in runs):
        raise ValueError(f"{json_path}: chunk_runs must be a list of [shard, first_frame, count] integers")
    chunks = sum(run[2] for run in runs)
    if info["shape"][0] != chunks * per_chunk:
        raise ValueError(f"{json_path}: {info['shape'][0]} items, but chunk_runs hold {chunks} chunks of "
                         f"{per_chunk} latents")


def encoded_chunks(info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(shard, first frame), each (n,) int64, of every chunk of a temporal encoding, in row order."""
    runs = np.asarray(info["chunk_runs"], dtype=np.int64).reshape(-1, 3)
    counts = runs[:, 2]
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # chunk index in its run
    return np.repeat(runs[:, 0], counts), np.repeat(runs[:, 1], counts) + within * int(info["chunk_frames"])


def latent_frame_ranges(info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shard, first, stop), each (N',): latent row r covers frames [first[r], stop[r]) of shard[r].

    For per-frame encodings (temporal_compression 1) row r is frame r of the split.
    """
    if int(info.get("temporal_compression", 1)) == 1:
        frames = np.arange(int(info["shape"][0]), dtype=np.int64)
        return np.zeros_like(frames), frames, frames + 1
    shards, starts = encoded_chunks(info)
    spans = np.asarray(info["latent_frames"], dtype=np.int64)  # (L, 2)
    per_chunk = len(spans)
    first = np.repeat(starts, per_chunk) + np.tile(spans[:, 0], len(starts))
    stop = np.repeat(starts, per_chunk) + np.tile(spans[:, 1], len(starts))
    return np.repeat(shards, per_chunk), first, stop


def read_encoding(split_dir: str | os.PathLike, kind: str, num_frames: int | None = None):
    """(array, info) of the pre-encoded `kind` ("latents" | "tokens") beside a split folder, or (None, None).

    The JSON is checked against the array's size, a per-frame encoding against `num_frames`,
    a temporal one's chunk layout against itself.
    """
    array_name, json_name, _, dtype, item_dims = ENCODINGS[kind]
    json_path = Path(split_dir) / json_name
    if not json_path.is_file():
        return None, None
    info = read_json(json_path)
    shape = info.get("shape")
    if not isinstance(shape, list) or len(shape) != item_dims + 1 or not all(isinstance(x, int) for x in shape):
        raise ValueError(f"{json_path}: 'shape' {shape!r}, expected a list of {item_dims + 1} integers")
    if info.get("dtype") != dtype.name:
        raise ValueError(f"{json_path}: dtype {info.get('dtype')!r}, expected '{dtype.name}'")
    temporal = info.get("temporal_compression", 1)
    if not isinstance(temporal, int) or temporal < 1:
        raise ValueError(f"{json_path}: temporal_compression {temporal!r}, expected a positive integer")
    if temporal == 1 and num_frames is not None and shape[0] != num_frames:
        raise ValueError(f"{json_path}: {shape[0]} items for {num_frames} frames (temporal_compression 1)")
    if temporal > 1:
        check_chunk_layout(info, json_path)
    array = memmap_checked(Path(split_dir) / array_name, dtype, tuple(shape), f"{kind} {dtype.name} {tuple(shape)}")
    return array, info


def encoding_tokenizer_dir(split_dir: str | os.PathLike, kind: str) -> Path | None:
    """The tokenizer checkpoint copied beside a split's pre-encoded `latents`/`tokens`, if present."""
    folder = Path(split_dir) / ENCODINGS[kind][2]
    return folder if folder.is_dir() else None


class HWMDataset:
    """Memory-mapped reader of one `hwm-v1` split folder.

    Attributes: `frames` (N,H,W,3) uint8, `actions` (N,A) float32, `states` (N,S) float32 or
    None, `object_positions` (N,P) float32 or None (named by `object_position_names`), `segment_idx` (N,) int32, `metadata` (dict), `latents` (N',C,h,w) float16 or None,
    `tokens` (N',h,w) int32 or None, with `latents_info` / `tokens_info` (their JSON).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = require_folder(path, "hwm-v1 split")
        metadata_path = self.path / METADATA_FILE
        if not metadata_path.is_file():
            raise FileNotFoundError(f"{metadata_path}: missing; not an hwm-v1 split folder")
        self.metadata = read_json(metadata_path)
        missing = [key for key in REQUIRED_KEYS if key not in self.metadata]
        if missing:
            raise ValueError(f"{metadata_path}: missing keys {missing}")
        if self.metadata["format"] != FORMAT:
            raise ValueError(f"{metadata_path}: format '{self.metadata['format']}', expected '{FORMAT}'")
        try:
            n = int(self.metadata["num_frames"])
            h, w = int(self.metadata["height"]), int(self.metadata["width"])
            a = int(self.metadata["action_dim"])
            s = self.metadata["state_dim"]
            s = None if s is None else int(s)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{metadata_path}: num_frames/height/width/action_dim/state_dim must be integers ({error})")
        if n <= 0 or h <= 0 or w <= 0 or a <= 0:
            raise ValueError(f"{metadata_path}: num_frames, height, width and action_dim must be positive")
        if len(self.metadata["action_names"]) != a:
            raise ValueError(f"{metadata_path}: {len(self.metadata['action_names'])} action_names for action_dim {a}")
        binary = self.metadata.get("binary_action_dims", [])
        if not isinstance(binary, list) or any(not isinstance(d, int) or not 0 <= d < a for d in binary):
            raise ValueError(f"{metadata_path}: binary_action_dims {binary!r}, expected indices in [0, {a})")
        self.frames = memmap_checked(self.path / FRAMES_FILE, np.uint8, (n, h, w, 3), "frames uint8 (N,H,W,3)")
        self.actions = memmap_checked(self.path / ACTIONS_FILE, "<f4", (n, a), "actions float32 (N,A)")
        self.states = (
            None if s is None else memmap_checked(self.path / STATES_FILE, "<f4", (n, s), "states float32 (N,S)")
        )
        position_names = self.metadata.get("object_position_names")
        if position_names is not None and (not isinstance(position_names, list) or not position_names
                                           or not all(isinstance(name, str) for name in position_names)):
            raise ValueError(f"{metadata_path}: object_position_names {position_names!r}, expected a list of names")
        self.object_positions = None if position_names is None else memmap_checked(
            self.path / OBJECT_POSITIONS_FILE, "<f4", (n, len(position_names)), "object_positions float32 (N,P)")
        self.segment_idx = memmap_checked(self.path / SEGMENTS_FILE, "<i4", (n,), "segment_idx int32 (N,)")
        check_segment_idx(self.segment_idx, self.path / SEGMENTS_FILE)
        check_finite_rows(self.actions, self.path / ACTIONS_FILE, "actions")
        self.latents, self.latents_info = self._read_encoding("latents")
        self.tokens, self.tokens_info = self._read_encoding("tokens")

    def _read_encoding(self, kind: str):
        return read_encoding(self.path, kind, num_frames=len(self))

    def encoding_tokenizer_dir(self, kind: str) -> Path | None:
        """The tokenizer checkpoint copied beside pre-encoded `latents`/`tokens`, if present."""
        return encoding_tokenizer_dir(self.path, kind)

    def __len__(self) -> int:
        return int(self.metadata["num_frames"])

    def __reduce__(self):
        # re-open from the path: pickling a memmap would copy the whole array (spawned workers)
        return (type(self), (self.path,))

    format = FORMAT
    height = property(lambda self: int(self.metadata["height"]))
    width = property(lambda self: int(self.metadata["width"]))
    action_dim = property(lambda self: int(self.metadata["action_dim"]))
    num_episodes = property(lambda self: len(self.episode_ranges()))

    @property
    def action_names(self) -> list[str]:
        return list(self.metadata["action_names"])

    @property
    def object_position_names(self) -> list[str] | None:
        names = self.metadata.get("object_position_names")
        return None if names is None else list(names)

    @property
    def binary_action_dims(self) -> list[int]:
        return [int(d) for d in self.metadata.get("binary_action_dims", [])]

    @property
    def fps(self) -> float:
        return float(self.metadata["fps"])

    def episode_ranges(self) -> list[tuple[int, int]]:
        return episode_ranges_of(self.segment_idx)

    def __repr__(self) -> str:
        m = self.metadata
        return f"HWMDataset({self.path}, {m['num_frames']} frames, {m['height']}x{m['width']}, A={m['action_dim']})"
