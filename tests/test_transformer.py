"""The causal Transformer (models/transformer.py) and the parameter-matched LSTM
(models/lstm_matched.py): causality, the two positional encodings against their formulas, lengths
far past training, gradcheck, the hand-written rotary layer against torch's layer, and the solved
hidden size."""

import math

import pytest
import torch
from torch import nn

from ntm_bench.models import build_model
from ntm_bench.models import transformer as tr
from ntm_bench.models.lstm_matched import LSTMMatched, lstm_param_count, matched_hidden_size

POSITIONAL = tr.POSITIONAL
SMALL = {"d_model": 8, "num_layers": 2, "num_heads": 2, "feedforward": 16}
# input/output sizes of the paper's five tasks, and the parameter targets the lead compares at
PAPER_SHAPES = {
    "copy": (9, 8),
    "repeat_copy": (10, 9),
    "associative_recall": (8, 6),
    "ngrams": (1, 1),
    "priority_sort": (10, 8),
}
TARGETS = (62736, 63257, 62094, 59089, 134048)


def small(positional, input_size=3, output_size=2, **extra):
    torch.manual_seed(0)
    return build_model(
        "transformer", input_size, output_size, **{**SMALL, "positional": positional, **extra}
    )


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("positional", POSITIONAL)
@pytest.mark.parametrize("evaluating", [False, True])
def test_changing_later_inputs_leaves_earlier_logits_unchanged(positional, evaluating):
    """Eval under no_grad too: torch's layer may take its fused fast path there."""
    model = small(positional).train(not evaluating)
    x = randn(9, 2, 3)
    with torch.set_grad_enabled(not evaluating):
        before = model(x)
        for t in range(8):
            changed = x.clone()
            changed[t + 1 :] = randn(8 - t, 2, 3, seed=t + 1)
            after = model(changed)
            torch.testing.assert_close(after[: t + 1], before[: t + 1], atol=1e-6, rtol=1e-5)
            assert not torch.allclose(after[t + 1 :], before[t + 1 :]), "later inputs must matter"


def test_sinusoidal_table_against_hand_computed_values():
    table = tr.sinusoidal_table(3, 4)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    # position 1: pair 0 has frequency 1, pair 1 has 10000^(-2/4) = 1/100
    expected = torch.tensor([math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)])
    torch.testing.assert_close(table[1], expected)
    assert tr.sinusoidal_table(2, 5).shape == (2, 5)  # an odd width drops the last cosine
    torch.testing.assert_close(
        tr.sinusoidal_table(2, 5)[1, 4], torch.tensor(math.sin(1 / 10000**0.8))
    )


def test_rotary_preserves_norms_and_rotates_each_pair_by_its_angle():
    x = randn(2, 3, 7, 8, dtype=torch.float64)  # [B, H, T, d_head]
    positions = torch.arange(7)
    rotated = tr.rotate(x, positions)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    pairs, pairs_rotated = x.unflatten(-1, (4, 2)), rotated.unflatten(-1, (4, 2))
    # each pair alone, too
    torch.testing.assert_close(pairs_rotated.norm(dim=-1), pairs.norm(dim=-1))
    # the unit vector of pair i at position p lands at angle p * 10000^(-2i/d_head)
    for p in (0, 1, 5):
        for i in range(4):
            unit = torch.zeros(1, 8, dtype=torch.float64)
            unit[0, 2 * i] = 1.0
            angle = p * 10000 ** (-2 * i / 8)
            out = tr.rotate(unit, torch.tensor([p]))[0]
            torch.testing.assert_close(
                out[2 * i : 2 * i + 2],
                torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64),
            )


def test_rotary_dot_products_depend_only_on_relative_position():
    q, k = randn(1, 8, seed=1, dtype=torch.float64), randn(1, 8, seed=2, dtype=torch.float64)

    def score(m, n):
        return float(tr.rotate(q, torch.tensor([m])) @ tr.rotate(k, torch.tensor([n])).T)

    for offset in (0, 1, 3, -2):
        scores = [score(n + offset, n) for n in (2, 10, 57, 400)]
        assert max(scores) - min(scores) < 1e-9, (offset, scores)
    assert abs(score(3, 0) - score(1, 0)) > 1e-3, "different offsets must give different scores"


@pytest.mark.parametrize("positional", POSITIONAL)
def test_lengths_far_past_training_work_and_prefixes_agree(positional):
    model = small(positional)
    x = randn(500, 2, 3)
    with torch.no_grad():
        long = model(x)
        assert long.shape == (500, 2, 2) and torch.isfinite(long).all()
        torch.testing.assert_close(long[:10], model(x[:10]), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("positional", POSITIONAL)
def test_forward_gradcheck_float64(positional):
    model = small(positional, d_model=4, feedforward=6).double()
    x = randn(3, 2, 3, dtype=torch.float64).requires_grad_()
    names = [n for n, _ in model.named_parameters()]

    def forward(x, *flat):
        return torch.func.functional_call(model, dict(zip(names, flat)), (x,))

    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    assert torch.autograd.gradcheck(forward, (x, *params))


def test_rotary_layer_equals_torchs_layer_with_the_rotation_removed(monkeypatch):
    """The hand-written layer is torch.nn.TransformerEncoderLayer(norm_first=True) plus RoPE:
    with `rotate` the identity and the same weights, both give the same causal output."""
    torch.manual_seed(0)
    ours = tr.RotaryLayer(8, 2, 16, 0.0)
    theirs = nn.TransformerEncoderLayer(8, 2, 16, 0.0, norm_first=True)
    with torch.no_grad():
        theirs.self_attn.in_proj_weight.copy_(ours.qkv.weight)
        # nonzero biases count too
        theirs.self_attn.in_proj_bias.copy_(ours.qkv.bias.add(randn(24)))
        ours.qkv.bias.copy_(theirs.self_attn.in_proj_bias)
        theirs.self_attn.out_proj.weight.copy_(ours.proj.weight)
        theirs.self_attn.out_proj.bias.copy_(ours.proj.bias)
        for name in ("norm1", "norm2", "linear1", "linear2"):
            getattr(theirs, name).load_state_dict(getattr(ours, name).state_dict())
    monkeypatch.setattr(tr, "rotate", lambda x, positions: x)
    x = randn(6, 3, 8)
    mask = nn.Transformer.generate_square_subsequent_mask(6)
    torch.testing.assert_close(
        ours(x), theirs(x, src_mask=mask, is_causal=True), atol=1e-6, rtol=1e-5
    )


def test_the_encodings_have_equal_parameter_counts_in_closed_form():
    d, ff, layers, I, O = 128, 256, 2, 9, 8  # copy at the defaults
    per_layer = (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d) + 4 * d
    expected = (I * d + d) + layers * per_layer + 2 * d + (d * O + O)
    counts = {p: build_model("transformer", I, O, positional=p).n_params() for p in POSITIONAL}
    assert counts == {p: expected for p in POSITIONAL} and expected == 267528


def test_construction_is_deterministic_under_the_global_seed():
    a, b = small("rotary"), small("rotary")
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


BAD = [
    {"d_model": 10, "num_heads": 4},
    {"d_model": 6, "num_heads": 2, "positional": "rotary"},
    {"positional": "learned"},
    {"dropout": 1.0},
    {"dropout": -0.1},
    {"dropout": float("nan")},
    {"num_layers": 0},
    {"d_model": 0},
]


@pytest.mark.parametrize("bad", BAD)
def test_transformer_rejects_impossible_parameters(bad):
    with pytest.raises(ValueError):
        small(**{"positional": "sinusoidal", **bad})


@pytest.mark.parametrize("task", PAPER_SHAPES)
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_lstm_count_closed_form_equals_n_params(task, num_layers):
    I, O = PAPER_SHAPES[task]
    for target in TARGETS:
        model = LSTMMatched(I, O, params=target, num_layers=num_layers)
        assert lstm_param_count(I, O, model.hidden_size, num_layers) == model.n_params()


@pytest.mark.parametrize("task", PAPER_SHAPES)
@pytest.mark.parametrize("target", TARGETS)
def test_lstm_matched_lands_within_ten_percent_and_at_the_closest_size(task, target):
    I, O = PAPER_SHAPES[task]
    model = LSTMMatched(I, O, params=target)
    assert abs(model.n_params() - target) <= 0.1 * target
    H = model.hidden_size
    for neighbour in (H - 1, H + 1):
        if neighbour >= 1:
            assert abs(lstm_param_count(I, O, neighbour, 1) - target) >= abs(
                model.n_params() - target
            )
    assert matched_hidden_size(I, O, target).count == model.n_params()


def test_lstm_matched_rejects_targets_below_one_unit():
    smallest = lstm_param_count(9, 8, 1, 1)  # 66
    assert LSTMMatched(9, 8, params=math.ceil(smallest / 1.1)).hidden_size == 1
    with pytest.raises(ValueError, match="too small"):
        LSTMMatched(9, 8, params=math.ceil(smallest / 1.1) - 1)
    with pytest.raises(ValueError):
        LSTMMatched(9, 8, params=0)


def test_a_dropout_run_repeats_whatever_the_global_rng_held_before(tmp_path):
    """Dropout draws from torch's global RNG while training; the runner seeds it from the run's
    seed, so the same run from scratch gives the same curve after any history."""
    from ntm_bench.benchmarks.harness.config import load_profile
    from ntm_bench.benchmarks.harness.plan import plan_runs
    from ntm_bench.benchmarks.harness.runner import execute
    from conftest import tiny_profile

    profile = tiny_profile(
        tmp_path,
        train={"steps": 6, "eval_interval": 3, "checkpoint_interval": 100},
        models={
            "transformer": {
                "d_model": 8,
                "num_layers": 1,
                "num_heads": 2,
                "feedforward": 8,
                "dropout": 0.5,
            }
        },
    )
    spec = plan_runs(load_profile(profile), ["transformer"], ["copy"], [1])[0]
    curves = []
    for history in (0, 12345):
        torch.manual_seed(history)
        torch.rand(history % 97)  # and draw some
        result = execute(spec, tmp_path / f"ck{history}")
        curves.append([(c["split"], c["step"], c["cost_bits"]) for c in result["curves"]])
    assert curves[0] == curves[1]
