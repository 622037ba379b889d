"""Masked-HWM: shapes, parameter budget, masking statistics, learning, decoding, actions, bad input, CLI."""
import json
import math

import numpy as np
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.masked import MaskedConfig, MaskedHWM, masked_objective
from models.masked.maskgit import (
    corrupt_tokens, digits_to_tokens, masked_counts, mean_mask_ratio, random_future_mask, sample_tokens,
    token_digits, token_log_probs,
)

VOCAB, LEVELS, GRID, ACTION_DIM = 48, [4, 3, 4], [3, 4], 3


def tiny_config(**overrides) -> MaskedConfig:
    values = dict(vocab_size=VOCAB, fsq_levels=LEVELS, token_grid=GRID, num_past=2, num_future=1,
                  action_dim=ACTION_DIM, width=32, depth=3, num_heads=2, unshared_blocks=1)
    return MaskedConfig(**{**values, **overrides})


def random_inputs(config: MaskedConfig, batch: int = 2, future: int | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    future = config.num_future if future is None else future
    h, w = config.token_grid
    return {
        "past_tokens": torch.randint(0, config.vocab_size, (batch, config.num_past, h, w), generator=g),
        "past_actions": torch.randn(batch, config.num_past, config.action_dim, generator=g),
        "future_tokens": torch.randint(0, config.vocab_size, (batch, future, h, w), generator=g),
        "future_actions": torch.randn(batch, future, config.action_dim, generator=g),
    }


def all_masked(tokens: torch.Tensor) -> torch.Tensor:
    return torch.ones(tokens.shape, dtype=torch.bool)


# --- shapes and parameter counts ---------------------------------------------------------

@pytest.mark.parametrize("variant", ["base", "modality", "full"])
@pytest.mark.parametrize("factorized_head", [False, True])
def test_shapes_for_every_variant(variant, factorized_head):
    config = tiny_config(variant=variant, factorized_head=factorized_head, factorized_embedding=factorized_head,
                         num_future=2)
    model = MaskedHWM(config).eval()
    x = random_inputs(config, batch=3)
    logits = model(x["past_tokens"], x["past_actions"], x["future_tokens"], x["future_actions"],
                   all_masked(x["future_tokens"]))
    assert logits.shape == (3, 2, *GRID, sum(LEVELS) if factorized_head else VOCAB)
    predicted = model.predict(x["past_tokens"], x["past_actions"], x["future_actions"], steps=2)
    assert predicted.shape == (3, 2, *GRID) and predicted.dtype == torch.int64
    assert 0 <= int(predicted.min()) and int(predicted.max()) < VOCAB
    rolled = model.rollout(x["past_tokens"], x["past_actions"], torch.randn(3, 3, ACTION_DIM), steps=1)
    assert rolled.shape == (3, 3, *GRID) and rolled.dtype == torch.int64


@pytest.mark.parametrize("variant", ["base", "modality", "full"])
def test_every_parameter_gets_a_gradient(variant):
    """No dead weights (the last block keeps only what the future frame reads)."""
    model = MaskedHWM(tiny_config(variant=variant, num_future=2))
    loss, _ = masked_objective(model, random_inputs(model.config, batch=2))
    loss.backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_sharing_variants_share_weights():
    counts = {v: sum(p.numel() for p in MaskedHWM(tiny_config(variant=v, depth=4)).parameters())
              for v in ("base", "modality", "full")}
    assert counts["base"] > counts["modality"] > counts["full"]
    # the first `unshared_blocks` stay per-stream: full sharing from block 0 is smaller still
    full_everywhere = MaskedHWM(tiny_config(variant="full", depth=4, unshared_blocks=0))
    assert sum(p.numel() for p in full_everywhere.parameters()) < counts["full"]


@pytest.mark.parametrize("variant, paper_params", [("base", 321.4e6), ("full", 195.3e6)])
def test_paper_parameter_counts_on_meta_device(variant, paper_params):
    from train.commands.masked import MaskedTrainingConfig
    from train.config import load_config

    config = load_config(MaskedTrainingConfig, "masked", "paper", [f"model.variant={variant}"]).model
    with torch.device("meta"):
        model = MaskedHWM(config)
    params = sum(p.numel() for p in model.parameters())
    assert all(p.is_meta for p in model.parameters())
    print(f"Masked-HWM paper {variant}: {params / 1e6:.1f} M (paper {paper_params / 1e6:.1f} M)")
    assert abs(params - paper_params) / paper_params < 0.02


def test_factorized_head_is_a_normalised_distribution():
    config = tiny_config(factorized_head=True)
    logits = torch.randn(2, sum(LEVELS))
    every_token = torch.arange(VOCAB)
    log_p = token_log_probs(logits[:, None].expand(2, VOCAB, -1), every_token.expand(2, VOCAB), config.fsq_levels)
    assert torch.allclose(log_p.exp().sum(-1), torch.ones(2), atol=1e-5)


def test_digit_embedding_sums_one_vector_per_fsq_digit():
    from models.masked.maskgit import token_digits

    model = MaskedHWM(tiny_config(factorized_embedding=True))
    embedding = model.transformer.token_embedding
    assert embedding.weight.shape == (sum(LEVELS), 32)  # 11 rows, not VOCAB
    tokens = torch.arange(VOCAB)
    digits = token_digits(tokens, LEVELS)
    offsets = torch.tensor([0, LEVELS[0], LEVELS[0] + LEVELS[1]])
    expected = embedding.weight[digits + offsets].sum(1)
    torch.testing.assert_close(embedding(tokens), expected)
    # tokens that share digits share parts of their embedding; different tokens differ
    assert torch.unique(embedding(tokens), dim=0).shape[0] == VOCAB
    full = MaskedHWM(tiny_config())
    saved = sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in model.parameters())
    assert saved == (VOCAB - sum(LEVELS)) * 32


# --- masking schedule and corruption ------------------------------------------------------

def test_cosine_mask_ratio_statistics_match_the_schedule():
    g = torch.Generator().manual_seed(0)
    tokens = 64
    mask = random_future_mask(40_000, tokens, generator=g)
    ratios = mask.float().mean(1)
    assert abs(float(ratios.mean()) - mean_mask_ratio()) < 0.005  # integral of cos(pi/2 u) = 2/pi
    # distribution: P(ratio <= x) = 1 - (2/pi) arccos(x), up to the rounding to whole tokens
    for x in (0.25, 0.5, 0.75):
        expected = 1 - 2 / math.pi * math.acos(x)
        assert abs(float((ratios <= x).float().mean()) - expected) < 0.02
    assert bool((mask.sum(1) >= 1).all())  # every sample has something to learn


def test_static_history_fraction_stills_that_share_of_the_past():
    config = tiny_config(static_history_fraction=0.5, max_corrupt_rate=0.0)
    model = MaskedHWM(config)
    inputs = random_inputs(config, batch=4000)
    batch = {"past_tokens": inputs["past_tokens"], "past_actions": inputs["past_actions"],
             "future_tokens": inputs["future_tokens"], "future_actions": inputs["future_actions"]}
    out, targets, _ = model.training_batch(batch, generator=torch.Generator().manual_seed(0))
    past = out["past_tokens"]
    still = (past == past[:, -1:]).flatten(1).all(1)  # every past frame equals the last
    assert abs(float(still.float().mean()) - 0.5) < 0.03
    kept = ~still
    assert torch.equal(past[kept], inputs["past_tokens"][kept])  # the others are untouched
    assert torch.equal(past[:, -1], inputs["past_tokens"][:, -1])  # the last frame always is
    assert torch.equal(out["past_actions"], inputs["past_actions"]) and torch.equal(targets, inputs["future_tokens"])
    # 0 (the default) leaves every history as it was
    plain, _, _ = MaskedHWM(tiny_config(max_corrupt_rate=0.0)).training_batch(batch, generator=torch.Generator().manual_seed(0))
    assert torch.equal(plain["past_tokens"], inputs["past_tokens"])
    with pytest.raises(ValueError, match="static_history_fraction"):
        MaskedHWM(tiny_config(static_history_fraction=-0.1))


def test_corruption_rate_and_decoding_schedule():
    g = torch.Generator().manual_seed(0)
    tokens = torch.zeros(20_000, 16, dtype=torch.long)
    corrupted = corrupt_tokens(tokens, 0.2, 100, generator=g)
    # rate ~ U(0, 0.2): mean 0.1, and a replacement draws id 0 again 1% of the time
    assert abs(float((corrupted != 0).float().mean()) - 0.1 * 0.99) < 0.003
    assert torch.equal(tokens, torch.zeros_like(tokens))  # input untouched
    counts = masked_counts(64, 4)
    assert counts == sorted(counts, reverse=True) and counts[-1] == 0 and len(set(counts)) == 4
    assert counts[0] == math.floor(64 * math.cos(math.pi / 8))


# --- learning -----------------------------------------------------------------------------

def action_task_batch(batch: int, generator: torch.Generator, config: MaskedConfig):
    """Future tokens are a function of the future action only: every cell reads 5 if a0 > 0 else 11."""
    h, w = config.token_grid
    past = torch.randint(0, config.vocab_size, (batch, config.num_past, h, w), generator=generator)
    future_actions = torch.randn(batch, 1, config.action_dim, generator=generator)
    future = torch.where(future_actions[:, :, :1, None] > 0, 5, 11).expand(batch, 1, h, w).clone()
    return {"past_tokens": past, "past_actions": torch.randn(batch, config.num_past, config.action_dim,
                                                              generator=generator),
            "future_tokens": future, "future_actions": future_actions}


@pytest.fixture(scope="module")
def trained_on_action_task():
    torch.manual_seed(0)
    config = tiny_config(depth=2, max_corrupt_rate=0.1)
    model = MaskedHWM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(60):
        loss, _ = masked_objective(model, action_task_batch(32, g, config))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model.eval(), losses


def test_tiny_overfit_loss_falls(trained_on_action_task):
    _, losses = trained_on_action_task
    assert losses[0] > math.log(VOCAB) - 0.3  # starts at chance
    assert np.mean(losses[-5:]) < 0.1 * losses[0]


def test_trained_model_follows_the_actions(trained_on_action_task):
    model, _ = trained_on_action_task
    config = model.config
    batch = action_task_batch(16, torch.Generator().manual_seed(7), config)
    for sign, token in ((1.0, 5), (-1.0, 11)):
        actions = batch["future_actions"].abs() * sign
        predicted = model.predict(batch["past_tokens"], batch["past_actions"], actions, steps=2)
        assert float((predicted == token).float().mean()) > 0.95


def test_actions_change_future_logits_at_init():
    """The original's failure: video tokens could not attend to actions, so logits ignored them."""
    torch.manual_seed(0)
    for variant in ("base", "modality", "full"):
        model = MaskedHWM(tiny_config(variant=variant)).eval()
        assert all(p.detach().abs().sum() > 0 for name, p in model.named_parameters()
                   if "action" in name and name.endswith("weight"))
        x = random_inputs(model.config)
        mask = all_masked(x["future_tokens"])
        with torch.no_grad():
            reference = model(x["past_tokens"], x["past_actions"], x["future_tokens"], x["future_actions"], mask)
            new_future = model(x["past_tokens"], x["past_actions"], x["future_tokens"], x["future_actions"] + 1.0, mask)
            new_past = model(x["past_tokens"], x["past_actions"] + 1.0, x["future_tokens"], x["future_actions"], mask)
        assert float((reference - new_future).abs().max()) > 1e-4
        assert float((reference - new_past).abs().max()) > 1e-4


def test_temporal_attention_is_block_causal():
    """Future frame 1 never sees frame 2, so predicting F=1 is exactly the first frame of F=2."""
    model = MaskedHWM(tiny_config(num_future=2)).eval()
    x = random_inputs(model.config)
    mask = all_masked(x["future_tokens"])
    mask[:, 1] = False  # frame 2 visible: must not matter to frame 1
    with torch.no_grad():
        both = model(x["past_tokens"], x["past_actions"], x["future_tokens"], x["future_actions"], mask)
        changed = x["future_tokens"].clone()
        changed[:, 1] = (changed[:, 1] + 1) % VOCAB
        other = model(x["past_tokens"], x["past_actions"], changed, x["future_actions"], mask)
        first_only = model(x["past_tokens"], x["past_actions"], x["future_tokens"][:, :1],
                           x["future_actions"][:, :1], mask[:, :1])
    assert torch.allclose(both[:, 0], other[:, 0], atol=1e-5)
    assert not torch.allclose(both[:, 1], other[:, 1], atol=1e-5)
    assert torch.allclose(both[:, 0], first_only[:, 0], atol=1e-5)


# --- decoding -----------------------------------------------------------------------------

@pytest.mark.parametrize("unmask_mode", ["random", "confidence"])
def test_seeded_decoding_is_reproducible(unmask_mode):
    model = MaskedHWM(tiny_config(unmask_mode=unmask_mode)).eval()
    x = random_inputs(model.config, batch=4)
    args = (x["past_tokens"], x["past_actions"], torch.randn(4, 3, ACTION_DIM))

    def sample(seed):
        return model.rollout(*args, steps=3, temperature=1.0, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(sample(1), sample(1))
    assert not torch.equal(sample(1), sample(2))
    inputs_before = [a.clone() for a in args]
    model.predict(*args[:2], args[2][:, :1], temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(args, inputs_before))


@pytest.mark.parametrize("levels", [None, [2, 3]])
def test_sampling_follows_the_softmax(levels):
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0]) if levels is None else torch.tensor([0.3, -0.4, 1.0, 0.0, -1.0])
    samples = sample_tokens(logits.expand(40_000, -1), 1.0, levels, torch.Generator().manual_seed(0))
    every_token = torch.arange(6 if levels else 5)
    expected = token_log_probs(logits.expand(len(every_token), -1), every_token, levels).exp()
    observed = torch.bincount(samples, minlength=len(every_token)).float() / len(samples)
    assert torch.allclose(observed, expected, atol=0.01)
    halved = sample_tokens(logits.expand(40_000, -1), 0.5, levels, torch.Generator().manual_seed(0))
    sharper = token_log_probs(2 * logits.expand(len(every_token), -1), every_token, levels).exp()
    assert torch.allclose(torch.bincount(halved, minlength=len(every_token)).float() / 40_000, sharper, atol=0.01)


def test_one_generator_per_row_makes_batched_equal_to_single_calls():
    model = MaskedHWM(tiny_config(unmask_mode="confidence")).eval()
    x = random_inputs(model.config, batch=3)
    args = (x["past_tokens"], x["past_actions"], x["future_actions"])
    batched = model.predict(*args, steps=3, temperature=1.0,
                            generator=[torch.Generator().manual_seed(seed) for seed in (5, 6, 7)])
    for row, seed in enumerate((5, 6, 7)):
        single = model.predict(*(a[row : row + 1] for a in args), steps=3, temperature=1.0,
                               generator=torch.Generator().manual_seed(seed))
        assert torch.equal(batched[row : row + 1], single)
    with pytest.raises(ValueError, match="one per row"):
        model.predict(*args, temperature=1.0, generator=[torch.Generator()])


def test_greedy_one_step_decoding_is_the_argmax():
    model = MaskedHWM(tiny_config(factorized_head=True)).eval()
    x = random_inputs(model.config)
    with torch.no_grad():
        logits = model(x["past_tokens"], x["past_actions"], x["future_tokens"], x["future_actions"],
                       all_masked(x["future_tokens"]))
    digits = torch.stack([part.argmax(-1) for part in logits.split(LEVELS, -1)], -1)
    expected = (digits * torch.tensor([1, 4, 12])).sum(-1)
    predicted = model.predict(x["past_tokens"], x["past_actions"], x["future_actions"], steps=1, temperature=0.0)
    assert torch.equal(predicted, expected)


def test_mean_readout_is_the_expected_digit_and_rolls_on_the_nearest_tokens():
    model = MaskedHWM(tiny_config(factorized_head=True)).eval()
    x = random_inputs(model.config)
    with torch.no_grad():
        logits = model(x["past_tokens"], x["past_actions"], x["future_tokens"], x["future_actions"],
                       all_masked(x["future_tokens"]))
    expected = torch.stack([part.softmax(-1) @ torch.arange(level, dtype=torch.float32)
                            for level, part in zip(LEVELS, logits.split(LEVELS, -1))], -1)
    mean = model.predict(x["past_tokens"], x["past_actions"], x["future_actions"], steps=1, readout="mean")
    assert mean.shape == (*x["future_tokens"].shape, len(LEVELS)) and mean.dtype == torch.float32
    assert torch.allclose(mean, expected, atol=1e-5)
    # more steps: committed tokens read out as their own digits, so every readout is a valid mixture
    three = model.predict(x["past_tokens"], x["past_actions"], x["future_actions"], steps=3, readout="mean")
    assert (three >= 0).all() and (three <= torch.tensor(LEVELS) - 1).all()
    assert (three == three.round()).all(-1).any()  # some tokens were committed before the last step
    # rollout: the window slides on the rounded digits, i.e. the tokens nearest to each readout
    actions = torch.randn(2, 3, ACTION_DIM, generator=torch.Generator().manual_seed(1))
    rolled = model.rollout(x["past_tokens"], x["past_actions"], actions, steps=1, readout="mean")
    assert rolled.shape == (2, 3, *GRID, len(LEVELS))
    nearest = digits_to_tokens(rolled[:, :1], LEVELS)
    assert torch.equal(token_digits(nearest, LEVELS), rolled[:, :1].round().long())
    second = model.predict(torch.cat([x["past_tokens"][:, 1:], nearest], 1),
                           torch.cat([x["past_actions"][:, 1:], actions[:, :1]], 1), actions[:, 1:2], steps=1,
                           readout="mean")
    assert torch.allclose(rolled[:, 1:2], second, atol=1e-5)
    with pytest.raises(ValueError, match="factorised head"):
        MaskedHWM(tiny_config(factorized_head=False)).predict(x["past_tokens"], x["past_actions"],
                                                              x["future_actions"], readout="mean")
    with pytest.raises(ValueError, match="readout must be one of"):
        model.predict(x["past_tokens"], x["past_actions"], x["future_actions"], readout="median")
    # the checkpoint's default readout (what hwm eval model and the envs show) is checked when built
    with pytest.raises(ValueError, match="MaskedConfig.readout"):
        MaskedHWM(MaskedConfig(vocab_size=16, fsq_levels=[4, 4], readout="mean", width=32, depth=1, num_heads=2))
    with pytest.raises(ValueError, match="MaskedConfig.readout"):
        MaskedHWM(MaskedConfig(vocab_size=16, fsq_levels=[4, 4], factorized_head=True, readout="median", width=32,
                               depth=1, num_heads=2))


# --- bad input ----------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    model = MaskedHWM(tiny_config()).eval()
    x = random_inputs(model.config)
    past, past_actions, future_actions = x["past_tokens"], x["past_actions"], x["future_actions"]
    cases = [
        ((past + VOCAB, past_actions, future_actions), {}, "outside the vocabulary"),
        ((past - VOCAB, past_actions, future_actions), {}, "outside the vocabulary"),
        ((past[..., :2], past_actions, future_actions), {}, "token grid"),
        ((past.float(), past_actions, future_actions), {}, "dtype"),
        ((past[:, :1], past_actions[:, :1], future_actions), {}, "num_past=2"),
        ((past, past_actions[..., :2], future_actions), {}, "A=3"),
        ((past, past_actions, torch.randn(2, 1, 5)), {}, "A=3"),
        ((past, past_actions, future_actions * float("nan")), {}, "NaN"),
        ((past, past_actions, torch.randn(2, 2, 3)), {}, "num_future=1"),
        ((past, past_actions, future_actions), {"cfg_scale": 2.0}, "cfg_scale"),
        ((past, past_actions, future_actions), {"steps": 0}, "steps"),
        ((past, past_actions, future_actions), {"temperature": -1.0}, "temperature"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            model.predict(*args, **kwargs)
    with pytest.raises(ValueError, match="A=3"):
        model.rollout(past, past_actions, torch.randn(2, 4, 7))


def test_bad_configs_raise_clear_errors():
    for overrides, message in [
        ({"variant": "split"}, "variant"),
        ({"fsq_levels": [4, 4]}, "fsq_levels"),
        ({"fsq_levels": None, "factorized_head": True}, "factorized_head"),
        ({"fsq_levels": None, "factorized_embedding": True}, "factorized_embedding"),
        ({"width": 30}, "width"),
        ({"unmask_mode": "greedy"}, "unmask_mode"),
    ]:
        with pytest.raises(ValueError, match=message):
            MaskedHWM(tiny_config(**overrides))


# --- checkpoints --------------------------------------------------------------------------

def test_checkpoint_round_trip_and_family_check(tmp_path):
    from models.loading import load_world_model

    model = MaskedHWM(tiny_config()).eval()
    model.action_normalizer.set_stats(torch.arange(3.0), torch.full((3,), 2.0))
    save_checkpoint(tmp_path / "ckpt", model.state_dict(), model.checkpoint_config(["a", "b", "c"]))
    loaded = load_world_model(tmp_path / "ckpt")
    assert isinstance(loaded, MaskedHWM) and loaded.config == model.config
    x = random_inputs(model.config)
    generator_args = dict(steps=2, temperature=1.0)
    assert torch.equal(
        model.predict(x["past_tokens"], x["past_actions"], x["future_actions"], generator=torch.Generator().manual_seed(3), **generator_args),
        loaded.predict(x["past_tokens"], x["past_actions"], x["future_actions"], generator=torch.Generator().manual_seed(3), **generator_args),
    )
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["family"] = "flow"
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="expected a 'masked' checkpoint"):
        MaskedHWM.from_checkpoint(tmp_path / "ckpt")


# --- CLI: hwm train masked, hwm eval tokens ---------------------------------------------

def write_token_dataset(root, with_tokens: bool = True, fsq_levels=(4, 4)):
    """train/ + val/ hwm-v1 splits of 16x16 frames with tokens from a tiny FSQ tokenizer (4x4 grid, 16 codes)."""
    from models.tokenizers import AutoencoderConfig, ConvTokenizer
    from models.data.hwm_format import HWMWriter, write_encoding

    tokenizer = ConvTokenizer(AutoencoderConfig(image_size=[16, 16], quantizer="fsq", fsq_levels=list(fsq_levels),
                                                channels=[8, 8], res_blocks=1, bottleneck_blocks=0, norm_groups=4))
    tokenizer.save(root / "tokenizer")
    rng = np.random.default_rng(0)
    for split, episodes in (("train", 4), ("val", 2)):
        with HWMWriter(root / split, 16, 16, action_dim=2, fps=10, action_names=["x", "grip"],
                       binary_action_dims=[1]) as writer:
            for _ in range(episodes):
                frames = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
                actions = np.stack([rng.normal(size=12), rng.integers(0, 2, 12)], 1).astype(np.float32)
                writer.add_episode(frames, actions)
        if with_tokens:
            frames = np.array(np.memmap(root / split / "frames.bin", np.uint8, "r").reshape(-1, 1, 16, 16, 3))
            tokens = tokenizer.encode(torch.from_numpy(frames))[:, 0]
            write_encoding(root / split, "tokens", tokens.numpy(), tokenizer.describe(), root / "tokenizer")
    return tokenizer


def test_cli_train_masked_suggests_the_factorized_head_for_a_large_vocabulary(tmp_path, capsys):
    from hwm_env.cli import main

    write_token_dataset(tmp_path / "data", fsq_levels=(8, 8, 8, 8))  # 4,096 codes
    common = ["train", "masked", "--data", str(tmp_path / "data"), "--config", "tiny"]
    overrides = ["train.steps=1", "train.batch_size=4", "train.val_every=0"]
    assert main([*common, "--out", str(tmp_path / "full"), *overrides]) == 0
    assert "model.factorized_head=true" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "factorized"), *overrides, "model.factorized_head=true"]) == 0
    assert "factorized_head" not in capsys.readouterr().err


def test_cli_train_masked_and_eval_tokens(tmp_path, capsys):
    from hwm_env.cli import main
    from models.loading import load_world_model
    from models.tokenizers import load_tokenizer

    write_token_dataset(tmp_path / "data")
    out = tmp_path / "run"
    code = main(["train", "masked", "--data", str(tmp_path / "data"), "--config", "tiny", "--out", str(out),
                 "train.steps=4", "train.batch_size=4", "train.val_every=4", "train.save_every=4",
                 "model.factorized_head=true"])
    assert code == 0
    model = load_world_model(out / "final")
    assert model.config.vocab_size == 16 and model.config.token_grid == [4, 4] and model.config.fsq_levels == [4, 4]
    assert model.config.factorized_head and model.action_dim == 2
    assert float(model.action_normalizer.std[1]) == 1.0 and float(model.action_normalizer.mean[1]) == 0.0  # binary
    assert load_tokenizer(out / "final" / "tokenizer").vocab_size == 16

    result_path = tmp_path / "tokens.json"
    assert main(["eval", "tokens", "--checkpoint", str(out / "final"), "--data", str(tmp_path / "data"),
                 "--json", str(result_path), "--batch-size", "8"]) == 0
    result = json.loads(result_path.read_text())
    assert result["tokens"] == result["windows"] * 16 and result["windows"] == 2 * (12 - 3)
    assert math.isfinite(result["cross_entropy"]) and 0.0 <= result["accuracy"] <= 1.0
    assert result["uniform_cross_entropy"] == pytest.approx(math.log(16))
    assert "cross-entropy" in capsys.readouterr().out


def test_cli_writes_runs_masked_config_and_resumes_only_the_same_config(tmp_path, monkeypatch, capsys):
    """Default --out is runs/masked-<config>; the stored `train` schedule may change on resume, the model may not."""
    from hwm_env.cli import main

    write_token_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    command = ["train", "masked", "--data", "data", "--config", "tiny", "train.batch_size=4", "train.val_every=0",
               "train.save_every=1"]
    assert main([*command, "train.steps=1"]) == 0
    assert (tmp_path / "runs" / "masked-tiny" / "final" / "config.json").is_file()
    assert main([*command, "train.steps=2", "model.num_heads=4"]) == 2
    assert "runs/masked-tiny holds a run of a different config (model.num_heads: 2 -> 4)" in capsys.readouterr().err
    assert main([*command, "train.steps=2"]) == 0
    assert "resumed from runs/masked-tiny/checkpoints/step_0000001" in capsys.readouterr().out


def test_cli_errors_without_tokens(tmp_path, capsys):
    from hwm_env.cli import main

    write_token_dataset(tmp_path / "data", with_tokens=False)
    assert main(["train", "masked", "--data", str(tmp_path / "data"), "--config", "tiny",
                 "--out", str(tmp_path / "run")]) == 2
    assert "hwm data encode" in capsys.readouterr().err


def test_cli_trains_on_1x_v2_tokens(tmp_path):
    """The 1X v2.0 tokenized layout (Cosmos DV8x8x8: 64,000 FSQ codes, 32x32 grid) trains as is."""
    from onex_fixtures import write_onex_split

    from hwm_env.cli import main

    write_onex_split(tmp_path / "train_v2.0", [60, 45], [[], [20]], nested=True)
    write_onex_split(tmp_path / "val_v2.0", [40], [[]], nested=False, seed=1)
    out = tmp_path / "run"
    assert main(["train", "masked", "--data", str(tmp_path), "--config", "tiny", "--out", str(out),
                 "train.steps=2", "train.batch_size=2", "train.val_batches=1", "train.val_every=2",
                 "train.save_every=2", "model.factorized_head=true"]) == 0
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["model"]["vocab_size"] == 64000 and config["model"]["token_grid"] == [32, 32]
    assert config["model"]["fsq_levels"] == [8, 8, 8, 5, 5, 5] and config["action_dim"] == 25
    assert config["tokenizer"] is None and not (out / "final" / "tokenizer").exists()
    assert main(["eval", "tokens", "--checkpoint", str(out / "final"), "--data", str(tmp_path),
                 "--json", str(tmp_path / "tokens.json")]) == 0
    assert json.loads((tmp_path / "tokens.json").read_text())["tokens"] % 1024 == 0
