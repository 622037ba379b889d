"""Seed domains: every purpose draws its episodes from its own stream, so no two purposes share a start.

A benchmark that starts from the scenes a model was trained on measures memory, not
planning. Before domains existed, planning episode i and `hwm data sim` episode i both took
the first word of `SeedSequence(seed).spawn(n)[i]`, so the planning set began at the first
frames of training episodes 0-19. Now each purpose has a domain:

| domain | used by | entropy of episode i |
|---|---|---|
| `training` | `hwm data sim` (the default; unchanged, so existing data sets stay reproducible) | `SeedSequence(seed).spawn(n)[i]` |
| `evaluation` | `hwm data sim --domain evaluation` (held-out selection and test sets) | `SeedSequence([TAG, seed]).spawn(n)[i]` |
| `planning` | `hwm bench planning` | same, its own tag |
| `policy-training` | imagined and simulated PPO starts | same, its own tag |
| `policy-scoring` | policy scoring episodes | same, its own tag |

The tags are distinct non-zero 32-bit words, so `[TAG, seed]` never equals the one-word
entropy of a training seed, and two domains never share an entropy pool.
`tests/test_seeds.py` checks that no planning or policy start equals a training start.
Within a domain, seed sets have names where a benchmark needs two: `selection` (settings
are chosen on it) and `test` (reported, never tuned on).
"""
from __future__ import annotations

import numpy as np

DOMAIN_TAGS = {
    "training": None,
    "evaluation": 0x45564131,
    "planning": 0x504C4E31,
    "policy-training": 0x50545231,
    "policy-scoring": 0x50534331,
}
DOMAINS = tuple(DOMAIN_TAGS)
SEED_SETS = {"selection": 0, "test": 1}


def check_domain(domain: str) -> str:
    if domain not in DOMAIN_TAGS:
        raise ValueError(f"unknown seed domain '{domain}'; known: {', '.join(DOMAINS)}")
    return domain


def seed_set(name_or_seed: str | int) -> int:
    """The seed of a named set (`selection` -> 0, `test` -> 1), or an integer seed as it is."""
    if isinstance(name_or_seed, (int, np.integer)) and not isinstance(name_or_seed, bool):
        return int(name_or_seed)
    if name_or_seed in SEED_SETS:
        return SEED_SETS[name_or_seed]
    try:
        return int(name_or_seed)
    except (TypeError, ValueError):
        raise ValueError(f"seed set must be one of {list(SEED_SETS)} or an integer, got {name_or_seed!r}") from None


def episode_sequences(domain: str, seed: int, count: int) -> list[np.random.SeedSequence]:
    """One SeedSequence per episode of `domain`'s stream `seed`; draw words with `.generate_state(k)`."""
    tag = DOMAIN_TAGS[check_domain(domain)]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    entropy = int(seed) if tag is None else [tag, int(seed)]
    return np.random.SeedSequence(entropy).spawn(count)


def episode_seeds(domain: str, seed: int, count: int, words: int = 1) -> np.ndarray:
    """(count, words) int64 seeds of `domain`'s stream `seed`: the uint32 words `generate_state` gives.

    In the `training` domain these are exactly the words `hwm data sim` resets its episodes with.
    """
    sequences = episode_sequences(domain, seed, count)
    return np.array([sequence.generate_state(words) for sequence in sequences], dtype=np.int64).reshape(count, words)
