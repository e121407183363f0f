"""The fused NTM sequence (models.fused_engine with the steps of models.ntm_fused) and its
hand-derived gradients (models.ntm_memory_grad), against autograd through the plain step loop
(`NTM.fused = False`), the reference, in float64."""

import pytest
import torch

from models import build_model
from models import fused_engine
from models import ntm_fused
from models import ntm_memory as mem
from models import ntm_memory_grad as grad
from vjp_check import (
    assert_each_seed_alone,
    assert_fused_equals_the_step_loop,
    close,
    distribution,
    rand,
    vjp,
)

B, H, N, M = 2, 3, 6, 4


@pytest.mark.parametrize("heads", [1, 3])
def test_write_grad(heads):
    memory, weights = rand(B, N, M), distribution(B, heads, N, seed=1)
    erase, add = torch.sigmoid(rand(B, heads, M, seed=2)), torch.tanh(rand(B, heads, M, seed=3))
    if heads > 1:  # an exactly zero factor: keep is 0 there, and dividing keep by it would fail
        weights[0, 1] = torch.nn.functional.one_hot(torch.tensor(2), N).double()
        erase[0, 1] = 1.0
    dnew = rand(B, N, M, seed=4)
    keep = mem.kept(weights, erase)
    close(
        grad.write_grad(dnew, memory, weights, erase, add, keep),
        vjp(mem.write, [memory, weights, erase, add], dnew),
    )


def test_sharpen_grad():
    shifted, gamma, dout = (
        distribution(B, H, N),
        1 + torch.rand(B, H, dtype=torch.float64) * 3,
        rand(B, H, N, seed=5),
    )
    shifted[0, 0, 1] = 0.0  # an exact zero: the epsilon keeps power and log finite
    close(
        grad.sharpen_grad(dout, shifted, gamma, mem.sharpen(shifted, gamma)),
        vjp(mem.sharpen, [shifted, gamma], dout),
    )


@pytest.mark.parametrize("shift_range", [1, 2])
def test_shift_grad(shift_range):
    offsets = torch.arange(-shift_range, shift_range + 1)
    index, inverse = mem.shift_index(N, offsets), mem.shift_index(N, -offsets)
    gated, shift, dout = (
        distribution(B, H, N),
        distribution(B, H, len(offsets), seed=6),
        rand(B, H, N, seed=7),
    )
    expected = vjp(lambda w, s: mem.circular_shift(w, s, index), [gated, shift], dout)
    close(grad.shift_grad(dout, gated, shift, index, inverse), expected)


def test_interpolate_grad():
    content, previous, gate, dout = (
        distribution(B, H, N),
        distribution(B, H, N, seed=8),
        torch.rand(B, H).double(),
        rand(B, H, N, seed=9),
    )
    close(
        grad.interpolate_grad(dout, content, previous, gate),
        vjp(mem.interpolate, [content, previous, gate], dout),
    )


def test_content_grad_including_a_zero_key():
    memory, keys, strength, dout = (
        rand(B, N, M),
        rand(B, H, M, seed=10),
        torch.rand(B, H).double() * 5,
        rand(B, H, N, seed=11),
    )
    keys[1, 2] = 0.0  # a zero key: its norm's gradient is zero, as autograd's
    similarity, key_norm, row_norm = mem.cosine_parts(memory, keys)
    out = mem.content_weights(memory, keys, strength)
    actual = grad.content_grad(dout, memory, keys, strength, similarity, key_norm, row_norm, out)
    close(actual, vjp(mem.content_weights, [memory, keys, strength], dout))


def test_softmax_grad():
    x, dout = rand(B, H, N), rand(B, H, N, seed=12)
    close(
        [grad.softmax_grad(dout, torch.softmax(x, -1))],
        vjp(lambda v: torch.softmax(v, -1), [x], dout),
    )


def test_head_order_is_a_permutation_of_the_heads_layer():
    order = ntm_fused.head_order(2, 3, 4, 5)
    A = 4 + 5 + 3
    assert sorted(order.tolist()) == list(range(2 * A + 3 * (A + 2 * 4)))


CONFIGS = {
    "lstm": ("ntm", {}),
    "lstm-2r-3w-learned": ("ntm", {"read_heads": 2, "write_heads": 3, "memory_init": "learned"}),
    "lstm-shift2-random": (
        "ntm",
        {"shift_range": 2, "memory_init": "random", "weighting_init": "random"},
    ),
    "feedforward-2r-2w": ("ntm_ff", {"read_heads": 2, "write_heads": 2}),
    "clip-active": (
        "ntm",
        {"clip": 0.3},
    ),  # most head outputs clamped: the clamp's gradient mask matters
}


def model_pair(config):
    name, params = CONFIGS[config]
    torch.manual_seed(0)
    model = build_model(
        name, 3, 2, controller_size=5, memory_size=6, memory_width=4, **params
    ).double()
    return model, torch.randn(
        7, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )


@pytest.mark.parametrize("config", CONFIGS)
def test_fused_equals_the_step_loop_in_outputs_and_every_gradient(config):
    model, x = model_pair(config)
    assert_fused_equals_the_step_loop(model, x.requires_grad_(True))


def test_gradcheck_of_the_fused_function_in_every_input():
    model, x = model_pair("lstm-2r-3w-learned")
    # the initial state, the weights in head_order, the shifts
    operands = model.fused_operands(x.shape[1])
    inputs = [x, *operands.state, *operands.weights]
    inputs = [t.detach().clone().contiguous().requires_grad_(True) for t in inputs]

    def fn(*args):
        return fused_engine.Sequence.apply(
            model.fused_steps, model.layout, model.kernels, *args, *operands.constants
        )[:2]

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("steps", [7, 9])
def test_chunked_kernels_with_padding_equal_the_whole_sequence(steps):
    """compile_step's chunks (here eager chunk functions of 3 steps; 7 steps need padding)."""
    model, _ = model_pair("lstm-2r-3w-learned")
    x = torch.randn(steps, 2, 3, dtype=torch.float64)
    results = []
    for kernels in (fused_engine.Kernels(), fused_engine.Kernels(chunk=3)):
        model.kernels = kernels
        model.zero_grad()
        logits = model(x)
        logits.sin().sum().backward()
        results.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-12, rtol=1e-10)
    assert results[1][0].shape == (steps, 2, 2)
    for name in results[0][1]:
        torch.testing.assert_close(
            results[1][1][name], results[0][1][name], atol=1e-12, rtol=1e-10, msg=name
        )


@pytest.mark.parametrize(
    "config", ["lstm-2r-3w-learned", "feedforward-2r-2w", "lstm-shift2-random"]
)
def test_seeds_forward_equals_each_seed_alone_in_outputs_and_gradients(config):
    """K seeds in one fused pass (per-seed weights, K*B sequences through the memory ops)."""
    name, params = CONFIGS[config]
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(
            build_model(
                name, 3, 2, controller_size=5, memory_size=6, memory_width=4, **params
            ).double()
        )
    stacked, buffers = torch.func.stack_module_state(models)
    x = torch.randn(3, 7, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert_each_seed_alone(models, x, models[0].seeds_forward({**stacked, **buffers}, x), stacked)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ntm", "dnc"])
def test_really_compiled_chunks_equal_eager(name):
    """torch.compile for real (about a minute on 2 cores, hence `-m slow`): compile_step's
    chunks against the eager model, logits and gradients, float32, a length needing padding."""
    torch.manual_seed(0)
    eager = build_model(name, 3, 2, controller_size=5, memory_size=6, memory_width=4)
    compiled = build_model(name, 3, 2, controller_size=5, memory_size=6, memory_width=4)
    compiled.load_state_dict(eager.state_dict())
    assert compiled.compile_step(chunk=3)
    x = torch.randn(7, 2, 3, generator=torch.Generator().manual_seed(1))
    for model in (eager, compiled):
        model(x).sin().sum().backward()
    torch.testing.assert_close(compiled(x), eager(x), atol=1e-5, rtol=1e-4)
    for (pname, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=pname)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ntm", "dnc"])
def test_really_compiled_seed_pass_equals_each_seed_alone(name):
    """The compiled K-seed pass (SeedStack.compile_step, as train.compile uses for batched
    seeds) against each seed's eager model: logits and gradients, float32, padded length."""
    from benchmarks.batched import SeedStack

    models = []
    for seed in range(2):
        torch.manual_seed(seed)
        models.append(build_model(name, 3, 2, controller_size=5, memory_size=6, memory_width=4))
    stack = SeedStack(models)
    assert stack.compile_step() and stack.template.kernels.chunk == 8
    x = torch.randn(2, 7, 2, 3, generator=torch.Generator().manual_seed(1))
    assert_each_seed_alone(models, x, stack.forward(x), stack.params, atol=1e-5, rtol=1e-4)
