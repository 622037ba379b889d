"""Training windows: P past + F future latent frames with the actions that lead into them.

Every layout is reduced to *timelines*: a sequence of items (raw frames, or the latents of
1X chunks) with a run id (a window never leaves its run: a segment, or one 1X chunk), the
spacing between window frames, and for each item the k rows of an action table that lead
into it. Actions therefore live on the same clock as the frames they drive: with frame
stride k the latent at raw index r gets the k actions `actions[r-k : r]`, pooled (mean) or
kept per frame (DESIGN.md section 3, and the bug it fixes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from models.data import onex
from models.data.hwm_format import HWMDataset

SOURCES = ("latents", "tokens", "frames")
POOLINGS = ("mean", "none")


@dataclass
class Timeline:
    """Items of one shard/split that windows are cut from.

    run_id: (L,) non-decreasing; the items of a window share one run id.
    step: item distance between consecutive window frames (the frame stride on raw frames).
    can_start: (L,) bool; the actions into the item exist inside its run.
    action_table: (N, A) per-frame actions; action_rows(items (n,)) -> (n, k) rows of it.
    read: items (n,) -> array (n, ...) of the requested source.
    raw_index: items (n,) -> raw frame index r of each item (the last raw frame it covers).
    """

    run_id: np.ndarray
    step: int
    can_start: np.ndarray
    action_table: np.ndarray
    action_rows: Callable[[np.ndarray], np.ndarray]
    read: Callable[[np.ndarray], np.ndarray]
    raw_index: Callable[[np.ndarray], np.ndarray]
    segment_of: Callable[[np.ndarray], np.ndarray]
    shard: int = 0


def _frame_timeline(segment_idx, frame_stride, action_table, action_offset, read, shard=0) -> Timeline:
    """Raw frames at stride k; the actions into frame r are rows [r-k, r) + action_offset.

    hwm-v1 stores the action of frame t at row t (offset 0); 1X stores states, whose row t+1
    is the action of frame t (offset 1). Either way the first frame of a window needs the k
    frames before it in its segment.
    """
    segment_idx = np.asarray(segment_idx, dtype=np.int64)
    k = frame_stride
    can_start = np.zeros(len(segment_idx), dtype=bool)
    can_start[k:] = segment_idx[:-k] == segment_idx[k:]
    offsets = np.arange(-k, 0) + action_offset
    return Timeline(
        run_id=segment_idx,
        step=k,
        can_start=can_start,
        action_table=action_table,
        action_rows=lambda items: items[:, None] + offsets,
        read=read,
        raw_index=lambda items: items,
        segment_of=lambda items: segment_idx[items],
        shard=shard,
    )


def _onex_chunk_timeline(split: onex.OneXTokenizedSplit, shard: onex.OneXShard, cross_chunks: bool) -> Timeline:
    """Latents of the kept 1X chunks, 3 per chunk on an 8-frame clock.

    Latent t of chunk c covers raw frames [17c + a_t, 17c + b_t) with (a, b) from
    LATENT_FRAME_SPANS; the actions into it are the states at those frames (the action into
    frame f is states[f]). The first latent is a single frame: its one action is repeated so
    every latent carries 8 per-frame actions (a held pose). Windows stay inside one chunk
    unless cross_chunks, which joins adjacent kept chunks of one segment (the clock then
    jumps by one frame at each chunk boundary, because each chunk was encoded on its own).
    """
    chunks = shard.kept_chunks()
    chunk_of = np.repeat(chunks, onex.LATENTS_PER_CHUNK)  # (L,)
    time_of = np.tile(np.arange(onex.LATENTS_PER_CHUNK), len(chunks))  # (L,)
    per_latent = onex.TEMPORAL_COMPRESSION
    spans = np.zeros((onex.LATENTS_PER_CHUNK, per_latent), dtype=np.int64)
    for t, (a, b) in enumerate(onex.LATENT_FRAME_SPANS):
        frames = np.arange(a, b)
        spans[t] = np.concatenate([np.full(per_latent - len(frames), a), frames])  # front edge-pad
    last_frame = np.array([b - 1 for _, b in onex.LATENT_FRAME_SPANS])
    segment_of_chunk = np.asarray(shard.segment_idx)[chunks * onex.CHUNK_FRAMES].astype(np.int64)
    segment_of_latent = np.repeat(segment_of_chunk, onex.LATENTS_PER_CHUNK)  # (L,)
    if cross_chunks:
        # a new run starts where the chunk is not adjacent to the previous kept one or the segment changes
        breaks = np.ones(len(chunks), dtype=bool)
        breaks[1:] = (np.diff(chunks) != 1) | (np.diff(segment_of_chunk) != 0)
        run_of_chunk = np.cumsum(breaks)
    else:
        run_of_chunk = chunks
    return Timeline(
        run_id=np.repeat(run_of_chunk, onex.LATENTS_PER_CHUNK).astype(np.int64),
        step=1,
        can_start=np.ones(len(chunk_of), dtype=bool),
        action_table=shard.states,
        action_rows=lambda items: chunk_of[items, None] * onex.CHUNK_FRAMES + spans[time_of[items]],
        read=lambda items: split.read_tokens(shard, chunk_of[items], time_of[items]),
        raw_index=lambda items: chunk_of[items] * onex.CHUNK_FRAMES + last_frame[time_of[items]],
        segment_of=lambda items: segment_of_latent[items],
        shard=shard.index,
    )


def _hwm_reader(dataset: HWMDataset, source: str) -> Callable[[np.ndarray], np.ndarray]:
    if source == "frames":
        return lambda items: np.asarray(dataset.frames[items])
    array, info = (dataset.latents, dataset.latents_info) if source == "latents" else (dataset.tokens, dataset.tokens_info)
    if array is None:
        raise ValueError(
            f"{dataset.path}: no pre-encoded {source} ({source}.bin + {source}.json); "
            f"encode the split first (hwm data encode) or use source='frames'"
        )
    if int(info.get("temporal_compression", 1)) != 1:
        raise ValueError(
            f"{dataset.path / (source + '.json')}: temporal_compression {info['temporal_compression']}; "
            "windows over hwm-v1 splits need per-frame latents (temporal_compression 1)"
        )
    return lambda items: np.asarray(array[items])


def split_timelines(split, source: str, frame_stride: int = 1, cross_chunks: bool = False) -> list[Timeline]:
    """The timelines of an hwm-v1 split or a 1X v2.0 split for one data source."""
    if isinstance(split, HWMDataset):
        return [_frame_timeline(split.segment_idx, frame_stride, split.actions, 0, _hwm_reader(split, source))]
    if isinstance(split, onex.OneXTokenizedSplit):
        if source != "tokens":
            raise ValueError(f"{split.path}: a 1X v2.0 tokenized split has source 'tokens' only, not '{source}'")
        if frame_stride != 1:
            raise ValueError(
                f"{split.path}: frame_stride {frame_stride}; 1X v2.0 tokens have a fixed clock "
                f"({onex.TEMPORAL_COMPRESSION} frames per latent), use frame_stride=1"
            )
        return [_onex_chunk_timeline(split, shard, cross_chunks) for shard in split.shards]
    if isinstance(split, onex.OneXRawSplit):
        if source != "frames":
            raise ValueError(f"{split.path}: a 1X v2.0 raw split has source 'frames' only, not '{source}'")
        return [
            _frame_timeline(
                shard.segment_idx, frame_stride, shard.states, 1,
                lambda items, shard=shard: split.read_frames(shard, items), shard=shard.index,
            )
            for shard in split.shards
        ]
    raise ValueError(f"unsupported split {split!r}; expected an HWMDataset or a 1X v2.0 split (see models.data.open)")


class WindowDataset(Dataset):
    """Every window of P past + F future latent frames (with their actions) inside one segment.

    Yields dicts of torch tensors: `past_<source>` / `future_<source>` (latents (P|F, C, h, w)
    float32, tokens (P|F, h, w) int64, frames (P|F, H, W, 3) uint8), `past_actions` (P, A) and
    `future_actions` (F, A) float32 in dataset units ((P|F, k, A) with action_pooling="none"),
    and ints `segment`, `start` and `shard`. `start` is the raw frame index r_0 of the first
    window frame (for a multi-frame 1X latent, the last raw frame it covers); frame i of the
    window sits at r_0 + i * frame_stride on hwm-v1 and 1X raw splits. With action_pooling
    "none" the k per-frame actions into each latent are kept: (P|F, k, A), k = frame_stride
    (8 for 1X tokens, whose single-frame first latent repeats its one action).
    """

    def __init__(
        self,
        split,
        num_past: int = 2,
        num_future: int = 1,
        source: str = "latents",
        frame_stride: int = 1,
        action_pooling: str = "mean",
        cross_chunks: bool = False,
    ):
        if isinstance(split, (str, os.PathLike)):
            from models.data.open import open_split

            split = open_split(split)
        if source not in SOURCES:
            raise ValueError(f"source '{source}', expected one of {SOURCES}")
        if action_pooling not in POOLINGS:
            raise ValueError(f"action_pooling '{action_pooling}', expected one of {POOLINGS}")
        if num_past < 1 or num_future < 1:
            raise ValueError(f"num_past {num_past} and num_future {num_future} must both be >= 1")
        if frame_stride < 1:
            raise ValueError(f"frame_stride {frame_stride} must be >= 1")
        self._arguments = (num_past, num_future, source, frame_stride, action_pooling, cross_chunks)
        self.split, self.source = split, source
        self.num_past, self.num_future = int(num_past), int(num_future)
        self.frame_stride, self.action_pooling = int(frame_stride), action_pooling
        self.timelines = split_timelines(split, source, frame_stride, cross_chunks)
        length = self.num_past + self.num_future
        self._starts = []
        for timeline in self.timelines:
            span = (length - 1) * timeline.step
            candidates = np.arange(max(len(timeline.run_id) - span, 0))
            valid = timeline.can_start[candidates] & (timeline.run_id[candidates] == timeline.run_id[candidates + span])
            self._starts.append(candidates[valid])
        self._offsets = np.cumsum([0] + [len(s) for s in self._starts])
        if self._offsets[-1] == 0:
            raise ValueError(
                f"{split.path}: no window of {self.num_past} past + {self.num_future} future frames "
                f"(frame stride {frame_stride}) fits inside any segment of this split; "
                f"{self._longest_run_message(length)}"
            )

    def _longest_run_message(self, length: int) -> str:
        longest = 0
        for timeline in self.timelines:
            if len(timeline.run_id):
                _, counts = np.unique(timeline.run_id, return_counts=True)
                longest = max(longest, int(counts.max()))
        if isinstance(self.split, onex.OneXTokenizedSplit):
            return (
                f"the window needs {length} consecutive latents, the longest run has {longest} "
                f"(a 17-frame chunk holds {onex.LATENTS_PER_CHUNK}; cross_chunks=True joins adjacent chunks "
                "of one segment)"
            )
        need = (length - 1) * self.frame_stride + 1 + self.frame_stride
        return (
            f"the window needs {need} consecutive frames (with the {self.frame_stride} before its first frame, "
            f"for the action into it), the longest segment has {longest} frames"
        )

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __reduce__(self):
        # timelines hold closures and memmaps; a spawned worker rebuilds them from the split
        return (type(self), (self.split, *self._arguments))

    def locate(self, index: int) -> tuple[Timeline, int]:
        """(timeline, first item) of window `index`."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        index %= len(self)
        which = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return self.timelines[which], int(self._starts[which][index - self._offsets[which]])

    def __getitem__(self, index: int) -> dict:
        timeline, first = self.locate(index)
        items = first + timeline.step * np.arange(self.num_past + self.num_future)  # (P+F,)
        data = timeline.read(items)  # (P+F, ...)
        rows = timeline.action_rows(items)  # (P+F, k)
        actions = np.asarray(timeline.action_table[rows.reshape(-1)], dtype=np.float32)
        actions = actions.reshape(*rows.shape, -1)  # (P+F, k, A)
        if self.action_pooling == "mean":
            actions = actions.mean(axis=1)  # (P+F, A)
        data = torch.from_numpy(np.ascontiguousarray(data))
        if self.source == "latents":
            data = data.float()
        elif self.source == "tokens":
            data = data.long()
        actions = torch.from_numpy(np.ascontiguousarray(actions))
        p = self.num_past
        return {
            f"past_{self.source}": data[:p],
            f"future_{self.source}": data[p:],
            "past_actions": actions[:p],
            "future_actions": actions[p:],
            "segment": int(timeline.segment_of(items[:1])[0]),
            "start": int(timeline.raw_index(items[:1])[0]),
            "shard": int(timeline.shard),
        }

    @property
    def action_dim(self) -> int:
        return int(self.split.action_dim)

    @property
    def action_names(self) -> list[str]:
        return list(self.split.action_names)

    @property
    def binary_action_dims(self) -> list[int]:
        return list(self.split.binary_action_dims)


def action_tables(split) -> list[np.ndarray]:
    """The per-frame action tables of a split (hwm-v1: actions; 1X: states, one per shard)."""
    if isinstance(split, HWMDataset):
        return [split.actions]
    if isinstance(split, onex.OneXSplit):
        return split.action_tables()
    raise ValueError(f"unsupported split {split!r}")


def action_summary(split, chunk: int = 1 << 20) -> dict[str, np.ndarray]:
    """Per-dim mean, std, min, max over every frame of a split, streamed in float64."""
    tables = action_tables(split)
    dim = tables[0].shape[1]
    total, total_sq = np.zeros(dim), np.zeros(dim)
    low, high = np.full(dim, np.inf), np.full(dim, -np.inf)
    count = 0
    for table in tables:
        for start in range(0, table.shape[0], chunk):
            block = np.asarray(table[start : start + chunk], dtype=np.float64)
            total += block.sum(axis=0)
            total_sq += np.square(block).sum(axis=0)
            low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
            count += len(block)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return {"mean": mean, "std": std, "min": low, "max": high, "count": count}


def action_statistics(split) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(mean, std, binary_dims) to normalise actions; call it on the TRAIN split only.

    Binary dims (hand closure) get mean 0 and std 1 so they stay 0/1; a dim that never moves
    in the data gets std 1 rather than a near-zero divisor.
    """
    if isinstance(split, (str, os.PathLike)):
        from models.data.open import open_split

        split = open_split(split)
    summary = action_summary(split)
    mean = summary["mean"].astype(np.float32)
    std = summary["std"].astype(np.float32)
    std[std < 1e-6] = 1.0
    binary_dims = [int(d) for d in split.binary_action_dims]
    mean[binary_dims], std[binary_dims] = 0.0, 1.0
    return mean, std, binary_dims
