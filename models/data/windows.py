"""Training windows: P past + F future latent frames with the actions that lead into them.

Every layout is reduced to *timelines*: a sequence of items (raw frames, or the latents of
independently encoded chunks) with a run id (a window never leaves its run: a segment, or
one chunk), the spacing between window frames, and for each item the k rows of an action
table that lead into it. Actions therefore live on the same clock as the frames they drive:
with frame stride k the latent at raw index r gets the k actions `actions[r-k : r]`, pooled
(mean) or kept per frame (DESIGN.md section 3, and the bug it fixes).

Chunked latents come from a causal video tokenizer (Cosmos 8x: a 17-frame chunk gives 3
latents covering its frames [0, 1), [1, 9), [9, 17)): 1X's own DV tokens, or latents/tokens
that `hwm data encode` wrote beside a 1X raw or hwm-v1 split. The paper's Flow-HWM window,
9 past + 8 future frames, is one chunk: past latents 0-1 (frames 0-8) with the 9 actions
into those frames, future latent 2 (frames 9-16) with the 8 actions into its frames;
`action_pooling="frames"` cuts exactly that (see WindowDataset).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from models.data import onex
from models.data.hwm_format import ENCODINGS, HWMDataset, encoded_chunks, encoding_tokenizer_dir, read_encoding

SOURCES = ("latents", "tokens", "frames")
POOLINGS = ("mean", "none", "frames")


@dataclass
class Timeline:
    """Items of one shard/split that windows are cut from.

    run_id: (L,) non-decreasing; the items of a window share one run id.
    step: item distance between consecutive window frames (the frame stride on raw frames).
    can_start: (L,) bool; the actions into the item exist inside its run.
    action_table: (N, A) per-frame actions; action_rows(items (n,)) -> (n, k) rows of it.
    read: items (n,) -> array (n, ...) of the requested source.
    raw_index: items (n,) -> raw frame index r of each item (the last raw frame it covers).
    frames_per_item: items (n,) -> how many of the k action rows are the item's own frames (the
        rest pad a chunk's single-frame first latent); None: all k.
    chunk_position: (L,) position of each item in its chunk (chunked latents), else None.
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
    frames_per_item: Callable[[np.ndarray], np.ndarray] | None = None
    chunk_position: np.ndarray | None = None
    chunk_frames: int = 0  # frames per chunk (chunked latents), for messages


def _frame_timeline(segment_idx, frame_stride, action_table, action_offset, read, shard=0) -> Timeline:
    """Raw frames at stride k; the actions into frame r are rows [r-k, r) + action_offset.

    hwm-v1 stores the action of frame t at row t (offset 0); 1X stores states, whose row t+1
    is the action of frame t (offset 1). Either way the first frame of a window needs the k
    frames before it in its segment.
    """
    segment_idx = np.asarray(segment_idx, dtype=np.int64)
    k = frame_stride
    # rows [r-k, r) + action_offset must lie in frame r's segment: the earliest is r - reach
    reach = k - action_offset
    can_start = np.ones(len(segment_idx), dtype=bool)
    if reach > 0:
        can_start[:reach] = False
        can_start[reach:] = segment_idx[:-reach] == segment_idx[reach:]
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


def _chunk_timeline(starts, latent_frames, read, segment_idx, action_table, action_offset: int,
                    cross_chunks: bool, chunk_frames: int, shard: int = 0) -> Timeline:
    """Latents of independently encoded chunks: latent t of chunk i covers raw frames
    starts[i] + [a_t, b_t), with [a_t, b_t) = latent_frames[t].

    The actions into a latent are those into its frames (the action into frame f is row
    f - 1 + action_offset: 1X states row f, hwm-v1 actions row f - 1). A chunk's
    single-frame first latent has one; it is repeated (a held pose) so every latent carries
    k = max(b - a) rows, and `frames_per_item` says how many are its own. Windows stay inside
    one chunk unless cross_chunks, which joins adjacent chunks of one segment (the clock then
    jumps by one frame at each chunk boundary, because each chunk was encoded on its own).
    `read(chunks (n,), times (n,))` returns the latents/tokens (n, ...).
    """
    starts = np.asarray(starts, dtype=np.int64)
    spans = np.asarray(latent_frames, dtype=np.int64)  # (L, 2)
    per_chunk = len(spans)
    chunk_of = np.repeat(np.arange(len(starts)), per_chunk)  # (N,)
    time_of = np.tile(np.arange(per_chunk), len(starts))  # (N,)
    lengths = spans[:, 1] - spans[:, 0]
    k = int(lengths.max())
    padded = np.stack([np.concatenate([np.full(k - (b - a), a), np.arange(a, b)]) for a, b in spans])  # (L, k)
    segment_of_chunk = np.asarray(segment_idx)[starts].astype(np.int64)
    segment_of_latent = np.repeat(segment_of_chunk, per_chunk)  # (N,)
    if cross_chunks:
        # a new run starts where the chunk is not adjacent to the previous one or the segment changes
        breaks = np.ones(len(starts), dtype=bool)
        breaks[1:] = (np.diff(starts) != chunk_frames) | (np.diff(segment_of_chunk) != 0)
        run_of_chunk = np.cumsum(breaks)
    else:
        run_of_chunk = np.arange(len(starts))
    return Timeline(
        run_id=np.repeat(run_of_chunk, per_chunk).astype(np.int64),
        step=1,
        can_start=np.ones(len(chunk_of), dtype=bool),
        action_table=action_table,
        action_rows=lambda items: starts[chunk_of[items], None] + padded[time_of[items]] + (action_offset - 1),
        read=lambda items: read(chunk_of[items], time_of[items]),
        raw_index=lambda items: starts[chunk_of[items]] + spans[time_of[items], 1] - 1,
        segment_of=lambda items: segment_of_latent[items],
        shard=shard,
        frames_per_item=lambda items: lengths[time_of[items]],
        chunk_position=time_of,
        chunk_frames=chunk_frames,
    )


def _onex_token_timeline(split: onex.OneXTokenizedSplit, shard: onex.OneXShard, cross_chunks: bool) -> Timeline:
    """1X's own DV8x8x8 tokens: the kept chunks of a shard (full, inside one segment), 3 latents each."""
    chunks = shard.kept_chunks()
    return _chunk_timeline(chunks * onex.CHUNK_FRAMES, onex.LATENT_FRAME_SPANS,
                           lambda c, t: split.read_tokens(shard, chunks[c], t), shard.segment_idx, shard.states,
                           1, cross_chunks, onex.CHUNK_FRAMES, shard.index)


def pre_encoded(split, kind: str) -> tuple[np.ndarray, dict, Path | None]:
    """(array, JSON, tokenizer copy) of the `kind` ("latents" | "tokens") encoded beside an hwm-v1 or 1X raw split.

    Fails saying what to run when there is none, or when the split is 1X's tokenized release.
    """
    if isinstance(split, onex.OneXTokenizedSplit):
        raise ValueError(
            f"{split.path}: a 1X v2.0 tokenized split has source 'tokens' only (its own Cosmos DV8x8x8 tokens), "
            f"not '{kind}'; continuous latents come from the raw variant (worldmodel_raw_data): hwm data encode "
            "--tokenizer <Cosmos-0.1-Tokenizer-CV8x8x8 folder> --data <raw root>"
        )
    if isinstance(split, HWMDataset):
        array, info = (split.latents, split.latents_info) if kind == "latents" else (split.tokens, split.tokens_info)
        hint = ""
    elif isinstance(split, onex.OneXRawSplit):
        array, info = read_encoding(split.path, kind)
        hint = f" --tokenizer <Cosmos-0.1-Tokenizer-{'CV' if kind == 'latents' else 'DV'}8x8x8 folder>"
    else:
        raise ValueError(f"unsupported split {split!r}; expected an HWMDataset or a 1X v2.0 split")
    if array is None:
        raise ValueError(
            f"{split.path}: no pre-encoded {kind} ({ENCODINGS[kind][0]} + {ENCODINGS[kind][1]}); "
            f"encode the split first (hwm data encode{hint}) or use source='frames'"
        )
    return array, info, encoding_tokenizer_dir(split.path, kind)


def _check_chunks_inside_segments(starts, segment_idx, chunk_frames: int, action_offset: int, json_path) -> None:
    """Each chunk (and, on hwm-v1, the frame whose action leads into it) lies inside one segment."""
    segment_idx = np.asarray(segment_idx)
    first = starts - (1 - action_offset)
    last = starts + chunk_frames - 1
    inside = (first >= 0) & (last < len(segment_idx))
    same = np.zeros(len(starts), dtype=bool)
    same[inside] = segment_idx[first[inside]] == segment_idx[last[inside]]
    if not same.all():
        raise ValueError(f"{json_path}: the chunk at frame {int(starts[~same][0])} does not lie inside one segment "
                         "of this split (did the split change after encoding?); encode it again (hwm data encode)")


def _encoded_chunk_timelines(split, array, info: dict, json_path, cross_chunks: bool) -> list[Timeline]:
    """One chunk timeline per shard of latents/tokens that `hwm data encode` wrote with a video tokenizer."""
    shards, starts = encoded_chunks(info)
    per_chunk, chunk_frames = int(info["latents_per_chunk"]), int(info["chunk_frames"])
    if isinstance(split, HWMDataset):  # hwm-v1: the action into frame f is actions[f - 1]
        sources = [(0, split.segment_idx, split.actions, 0)]
    else:  # 1X: the action into frame f is states[f]
        sources = [(shard.index, shard.segment_idx, shard.states, 1) for shard in split.shards]
    unknown = sorted(set(shards.tolist()) - {index for index, *_ in sources})
    if unknown:
        raise ValueError(f"{json_path}: chunks of shards {unknown[:5]} that {split.path} does not have; "
                         "encode it again (hwm data encode)")
    timelines = []
    for index, segment_idx, table, action_offset in sources:
        rows = np.flatnonzero(shards == index)  # chunk rows of this shard, in order
        if len(rows) == 0:
            continue
        _check_chunks_inside_segments(starts[rows], segment_idx, chunk_frames, action_offset, json_path)
        timelines.append(_chunk_timeline(
            starts[rows], info["latent_frames"],
            lambda c, t, rows=rows: np.asarray(array[rows[c] * per_chunk + t]),
            segment_idx, table, action_offset, cross_chunks, chunk_frames, index))
    return timelines


def split_timelines(split, source: str, frame_stride: int = 1, cross_chunks: bool = False) -> list[Timeline]:
    """The timelines of an hwm-v1 split or a 1X v2.0 split for one data source."""
    if isinstance(split, onex.OneXTokenizedSplit):
        if source != "tokens":
            pre_encoded(split, source)  # raises, saying where latents come from
        if frame_stride != 1:
            raise ValueError(
                f"{split.path}: frame_stride {frame_stride}; 1X v2.0 tokens have a fixed clock "
                f"({onex.TEMPORAL_COMPRESSION} frames per latent), use frame_stride=1"
            )
        return [_onex_token_timeline(split, shard, cross_chunks) for shard in split.shards]
    if not isinstance(split, (HWMDataset, onex.OneXRawSplit)):
        raise ValueError(f"unsupported split {split!r}; expected an HWMDataset or a 1X v2.0 split "
                         "(see models.data.open)")
    if source == "frames":
        if isinstance(split, HWMDataset):
            return [_frame_timeline(split.segment_idx, frame_stride, split.actions, 0,
                                    lambda items: np.asarray(split.frames[items]))]
        return [
            _frame_timeline(
                shard.segment_idx, frame_stride, shard.states, 1,
                lambda items, shard=shard: split.read_frames(shard, items), shard=shard.index,
            )
            for shard in split.shards
        ]
    array, info, _ = pre_encoded(split, source)
    json_path = split.path / ENCODINGS[source][1]
    if int(info.get("temporal_compression", 1)) == 1:
        if not isinstance(split, HWMDataset):
            raise ValueError(f"{json_path}: per-frame {source} beside a 1X raw split; encode it again "
                             "(hwm data encode)")
        return [_frame_timeline(split.segment_idx, frame_stride, split.actions, 0,
                                lambda items: np.asarray(array[items]))]
    if frame_stride != 1:
        raise ValueError(
            f"{json_path}: frame_stride {frame_stride}; latents of a video tokenizer have a fixed clock "
            f"({info['temporal_compression']} frames per latent), use frame_stride=1"
        )
    return _encoded_chunk_timelines(split, array, info, json_path, cross_chunks)


class WindowDataset(Dataset):
    """Every window of P past + F future latent frames (with their actions) inside one segment.

    Yields dicts of torch tensors: `past_<source>` / `future_<source>` (latents (P|F, C, h, w)
    float32, tokens (P|F, h, w) int64, frames (P|F, H, W, 3) uint8), `past_actions` (P, A) and
    `future_actions` (F, A) float32 in dataset units ((P|F, k, A) with action_pooling="none"),
    and ints `segment`, `start` and `shard`. `start` is the raw frame index r_0 of the first
    window frame (for a multi-frame chunk latent, the last raw frame it covers); frame i of the
    window sits at r_0 + i * frame_stride on per-frame sources.

    action_pooling:
      "mean"    one action per latent, the mean of the actions into the frames it covers;
      "none"    the k per-frame actions into each latent: (P|F, k, A), k = frame_stride (8 for
                chunked latents, whose single-frame first latent repeats its one action);
      "frames"  one action per frame the window covers, flattened: past (N_p, A), future (N_f, A).
                On chunked latents a window then starts at a chunk's first latent, so the
                paper's window, P=2 + F=1 latents of a Cosmos 8x chunk (frames 0 | 1-8 | 9-16),
                has N_p = 9 actions (into frames 0-8) and N_f = 8 (into frames 9-16); on
                per-frame sources it is "none" flattened (N = P*k, F*k).
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
            if action_pooling == "frames" and timeline.chunk_position is not None:
                valid &= timeline.chunk_position[candidates] == 0  # every window covers the same frames
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
        chunked = [timeline for timeline in self.timelines if timeline.chunk_position is not None]
        if chunked:
            per_chunk = int(chunked[0].chunk_position.max()) + 1
            return (
                f"the window needs {length} consecutive latents, the longest run has {longest} "
                f"(a {chunked[0].chunk_frames}-frame chunk holds {per_chunk}; cross_chunks=True joins adjacent "
                "chunks of one segment)"
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
        p = self.num_past
        if self.action_pooling == "frames":
            k = rows.shape[1]
            own = k if timeline.frames_per_item is None else timeline.frames_per_item(items)
            own = np.arange(k)[None, :] >= k - np.broadcast_to(own, (len(items),))[:, None]  # (P+F, k)
            past_actions, future_actions = actions[:p][own[:p]], actions[p:][own[p:]]  # (N_p, A), (N_f, A)
        else:
            if self.action_pooling == "mean":
                actions = actions.mean(axis=1)  # (P+F, A)
            past_actions, future_actions = actions[:p], actions[p:]
        data = torch.from_numpy(np.ascontiguousarray(data))
        if self.source == "latents":
            data = data.float()
        elif self.source == "tokens":
            data = data.long()
        return {
            f"past_{self.source}": data[:p],
            f"future_{self.source}": data[p:],
            "past_actions": torch.from_numpy(np.ascontiguousarray(past_actions)),
            "future_actions": torch.from_numpy(np.ascontiguousarray(future_actions)),
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
