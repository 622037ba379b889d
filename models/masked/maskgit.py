"""MaskGIT for world models: the masking schedule, training corruption, loss and decoding.

Training masks a cosine-scheduled share of the future frame's tokens (the model learns to
fill any share, which is what decoding asks of it) and, as in Copilot4D, swaps a random
share of all tokens for random ids so the model learns not to trust its context blindly.
Decoding starts from a fully masked future and commits tokens over a few steps, keeping
cos(pi/2 * step/steps) of them masked after each step.

Token distributions come from one softmax over the vocabulary, or (factorised head) one
softmax per FSQ digit; a token's log-probability is then the sum of its digits'.
With a factorised head, decoding can also read out the expected FSQ code of each token
("mean" readout) instead of one token: the point in code space nearest, in squared error,
to the model's belief, which the tokenizer's decoder turns into the frame of highest PSNR.
All randomness goes through `generator` (or torch's global RNG when it is None).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence, Union

import torch
import torch.nn.functional as F


Generators = Union[torch.Generator, Sequence[torch.Generator], None]


def uniform(shape: Sequence[int], generator: Generators, device) -> torch.Tensor:
    """U(0, 1) drawn on the generator's device (so a CPU generator seeds CUDA work too).

    A sequence of generators gives one per batch row (shape[0]): row i then depends on
    generator i only, so a batched env step equals the same envs stepped one by one.
    """
    shape = tuple(shape)
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}; pass one per row")
        rows = [torch.rand((1, *shape[1:]), generator=g, device=g.device).to(device) for g in generator]
        return torch.cat(rows) if rows else torch.empty(shape, device=device)
    source = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=source).to(device)


# --- schedule --------------------------------------------------------------------------

def cosine_schedule(progress: torch.Tensor | float) -> torch.Tensor:
    """Share of tokens still masked at `progress` in [0, 1]: cos(pi/2 * progress)."""
    return torch.cos(0.5 * math.pi * torch.as_tensor(progress, dtype=torch.float32))


def mean_mask_ratio() -> float:
    """Integral of the training mask ratio cos(pi/2 * u) over u ~ U(0, 1): 2/pi."""
    return 2.0 / math.pi


def random_future_mask(batch: int, num_tokens: int, generator: Generators = None, device=None) -> torch.Tensor:
    """(B, num_tokens) bool, True = masked: per sample a ratio r = cos(pi/2 * u), u ~ U(0, 1),
    and round(r * N) positions at random (stochastic rounding keeps E[count] = r * N; at least 1)."""
    ratios = cosine_schedule(uniform((batch,), generator, device))
    counts = torch.floor(ratios * num_tokens + uniform((batch,), generator, device)).clamp(1, num_tokens)
    order = uniform((batch, num_tokens), generator, device).argsort(dim=1).argsort(dim=1)  # random ranks
    return order < counts[:, None]


def corrupt_tokens(tokens: torch.Tensor, max_rate: float, vocab_size: int,
                   generator: Generators = None) -> torch.Tensor:
    """Replace a share ~ U(0, max_rate) (drawn per sample) of tokens by uniform random ids; new tensor."""
    if max_rate <= 0:
        return tokens
    batch = tokens.shape[0]
    rates = max_rate * uniform((batch,) + (1,) * (tokens.dim() - 1), generator, tokens.device)
    replace = uniform(tokens.shape, generator, tokens.device) < rates
    random_ids = (uniform(tokens.shape, generator, tokens.device) * vocab_size).long().clamp_max(vocab_size - 1)
    return torch.where(replace, random_ids, tokens)


# --- token distributions (full or factorised head) --------------------------------------

def digit_basis(levels: Sequence[int], device=None) -> torch.Tensor:
    """Mixed-radix place values, first digit least significant (the FSQ/Cosmos index convention)."""
    return torch.tensor([math.prod(levels[:i]) for i in range(len(levels))], dtype=torch.long, device=device)


def token_digits(tokens: torch.Tensor, levels: Sequence[int]) -> torch.Tensor:
    """tokens (...) -> FSQ digits (..., len(levels))."""
    basis = digit_basis(levels, tokens.device)
    return (tokens.unsqueeze(-1) // basis) % torch.tensor(list(levels), device=tokens.device)


def digits_to_tokens(digits: torch.Tensor, levels: Sequence[int]) -> torch.Tensor:
    """FSQ digits (..., len(levels)), fractional ones rounded to the nearest -> token ids (...)."""
    top = torch.tensor([level - 1 for level in levels], device=digits.device)
    rounded = torch.minimum(digits.round().long().clamp_min(0), top)
    return (rounded * digit_basis(levels, digits.device)).sum(-1)


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor, levels: Sequence[int] | None) -> torch.Tensor:
    """log p(tokens) (...) under logits (..., V) or factorised logits (..., sum(levels))."""
    logits = logits.float()
    if levels is None:
        return -F.cross_entropy(logits.flatten(0, -2), tokens.flatten(), reduction="none").view(tokens.shape)
    digits = token_digits(tokens, levels)
    total = torch.zeros(tokens.shape, device=logits.device)
    for i, digit_logits in enumerate(logits.split(list(levels), dim=-1)):
        total = total + digit_logits.log_softmax(-1).gather(-1, digits[..., i : i + 1]).squeeze(-1)
    return total


def sample_tokens(logits: torch.Tensor, temperature: float, levels: Sequence[int] | None,
                  generator: Generators = None) -> torch.Tensor:
    """Token ids (...) from logits: argmax at temperature 0, else Gumbel-max sampling."""
    logits = logits.float()
    parts = [logits] if levels is None else list(logits.split(list(levels), dim=-1))
    digits = []
    for part in parts:
        if temperature > 0:
            noise = uniform(part.shape, generator, part.device).clamp(1e-20, 1.0 - 1e-7)
            gumbel = -torch.log(-torch.log(noise))
            part = part / temperature + gumbel
        digits.append(part.argmax(-1))
    if levels is None:
        return digits[0]
    return (torch.stack(digits, -1) * digit_basis(levels, logits.device)).sum(-1)


def expected_digits(logits: torch.Tensor, levels: Sequence[int]) -> torch.Tensor:
    """E[digit] (..., len(levels)) float32 under factorised logits (..., sum(levels))."""
    means = []
    for level, part in zip(levels, logits.float().split(list(levels), dim=-1)):
        values = torch.arange(level, dtype=torch.float32, device=logits.device)
        means.append(part.softmax(-1) @ values)
    return torch.stack(means, -1)


READOUTS = ("tokens", "mean")


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                         levels: Sequence[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy in nats, accuracy of the argmax) over the positions where mask is True."""
    log_probs = token_log_probs(logits, targets, levels)
    weights = mask.float()
    count = weights.sum().clamp_min(1.0)
    loss = -(log_probs * weights).sum() / count
    with torch.no_grad():
        accuracy = ((sample_tokens(logits, 0.0, levels) == targets).float() * weights).sum() / count
    return loss, accuracy


# --- decoding ---------------------------------------------------------------------------

def masked_counts(num_tokens: int, steps: int) -> list[int]:
    """Tokens still masked after each of `steps` steps: floor(N cos(pi/2 s/steps)), strictly
    decreasing so every step commits at least one token, 0 after the last."""
    counts, previous = [], num_tokens
    for step in range(1, steps + 1):
        count = min(int(math.floor(num_tokens * math.cos(0.5 * math.pi * step / steps))), previous - 1)
        counts.append(max(count, 0))
        previous = counts[-1]
    counts[-1] = 0
    return counts


@torch.no_grad()
def maskgit_decode(
    logits_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape: Sequence[int],  # (B, F, h, w)
    steps: int,
    temperature: float,
    unmask_mode: str,
    levels: Sequence[int] | None = None,
    generator: Generators = None,
    device=None,
    readout: str = "tokens",
) -> torch.Tensor:
    """Decode (B, F, h, w) token ids from a fully masked start.

    `logits_fn(tokens, mask)` -> (B, F, h, w, head_size). Each step samples every masked
    token, then commits the masked tokens with the highest score (their log-probability in
    "confidence" mode, a random number in "random" mode) until the schedule's count remains.
    readout "mean" (factorised head only) returns FSQ digits (B, F, h, w, len(levels)) float32
    instead: the committed tokens' digits, and the expected digits of those the last step fills.
    """
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {list(READOUTS)}, got {readout!r}")
    if readout == "mean" and levels is None:
        raise ValueError("readout 'mean' needs a factorised head (one softmax per FSQ digit, "
                         "model.factorized_head=true); this model has one softmax over the vocabulary")
    batch = shape[0]
    num_tokens = math.prod(shape[1:])
    steps = max(1, min(steps, num_tokens))
    tokens = torch.zeros(tuple(shape), dtype=torch.long, device=device)
    mask = torch.ones(tuple(shape), dtype=torch.bool, device=device)
    for remaining in masked_counts(num_tokens, steps):
        logits = logits_fn(tokens, mask)
        if readout == "mean" and remaining == 0:  # the last step: every still-masked token is filled now
            committed = token_digits(tokens, levels).float()
            return torch.where(mask.unsqueeze(-1), expected_digits(logits, levels), committed)
        sampled = sample_tokens(logits, temperature, levels, generator)
        if unmask_mode == "confidence":
            scores = token_log_probs(logits, sampled, levels)
        elif unmask_mode == "random":
            scores = uniform(shape, generator, device)
        else:
            raise ValueError(f"unmask_mode must be 'confidence' or 'random', got {unmask_mode!r}")
        tokens = torch.where(mask, sampled, tokens)  # provisional; committed ones are kept below
        scores = scores.masked_fill(~mask, float("inf")).view(batch, num_tokens)
        new_mask = torch.zeros(batch, num_tokens, dtype=torch.bool, device=device)
        if remaining > 0:
            lowest = scores.topk(remaining, dim=1, largest=False).indices
            new_mask.scatter_(1, lowest, True)
        mask = new_mask.view(tuple(shape))
    return tokens
