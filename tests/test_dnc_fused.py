"""The fused DNC sequence (models.fused_engine with the steps of models.dnc_fused) and its
hand-derived gradients (models.dnc_memory_grad, dnc_memory.links_grad), against autograd through the
plain step loop (`DNC.fused = False`), the reference, in float64."""

import pytest
import torch

from models import build_model
from models import dnc_memory as dm
from models import dnc_memory_grad as dgrad
from models import fused_engine
from vjp_check import (
    assert_each_seed_alone,
    assert_fused_equals_the_step_loop,
    close,
    distribution,
    outputs_and_grads,
    rand,
    vjp,
)

B, R, N = 2, 3, 6


def gates(*shape, seed=0):
    return torch.sigmoid(rand(*shape, seed=seed))


@pytest.mark.parametrize("heads", [1, 3])
def test_retention_grad(heads):
    free, read = gates(B, heads), distribution(B, heads, N, seed=1)
    if heads > 1:  # an exactly zero factor: dividing psi by it would fail
        free[0, 1], read[0, 1] = 1.0, torch.nn.functional.one_hot(torch.tensor(2), N).double()
    dout = rand(B, N, seed=2)
    close(dgrad.retention_grad(dout, free, read), vjp(dm.retention, [free, read], dout))


def test_usage_grad():
    previous, write, retention, dout = (
        gates(B, N),
        distribution(B, N, seed=3),
        gates(B, N, seed=4),
        rand(B, N, seed=5),
    )
    close(
        dgrad.usage_grad(dout, previous, write, retention),
        vjp(dm.usage, [previous, write, retention], dout),
    )


@pytest.mark.parametrize("usage", ["random", "fresh", "nearly full"])
def test_allocation_grad(usage):
    """Random usage; a fresh memory (all zero: floored to EPS and tied, as at every sequence's
    start); and usages so close to 1 that the products underflow nothing but matter."""
    u = {
        "random": gates(B, N, seed=6),
        "fresh": torch.zeros(B, N, dtype=torch.float64),
        "nearly full": 1 - 1e-3 * gates(B, N, seed=6),
    }[usage]
    dout = rand(B, N, seed=7)
    _, sorted_usage, order, before = dm.allocation_parts(u)
    close([dgrad.allocation_grad(dout, sorted_usage, order, before)], vjp(dm.allocation, [u], dout))


def test_write_weighting_grad():
    content, allocation, write_gate, allocation_gate = (
        distribution(B, N),
        distribution(B, N, seed=8),
        gates(B, seed=9),
        gates(B, seed=10),
    )
    dout = rand(B, N, seed=11)
    expected = vjp(dm.write_weighting, [content, allocation, write_gate, allocation_gate], dout)
    close(
        dgrad.write_weighting_grad(dout, content, allocation, write_gate, allocation_gate), expected
    )


def test_precedence_grad():
    previous, write, dout = (
        distribution(B, N),
        0.7 * distribution(B, N, seed=12),
        rand(B, N, seed=13),
    )
    close(dgrad.precedence_grad(dout, previous, write), vjp(dm.precedence, [previous, write], dout))


def test_read_weighting_grad():
    backward, content, forward = (distribution(B, R, N, seed=s) for s in (14, 15, 16))
    modes, dout = distribution(B, R, 3, seed=17), rand(B, R, N, seed=18)
    expected = vjp(dm.read_weighting, [backward, content, forward, modes], dout)
    close(dgrad.read_weighting_grad(dout, backward, content, forward, modes), expected)


def test_links_grad_against_the_reference_link_and_directional_weights():
    previous = dm.link(
        0.3 * gates(B, N, N, seed=19),
        distribution(B, N, seed=20),
        0.5 * distribution(B, N, seed=21),
    )
    precedence, write, reads = (
        distribution(B, N, seed=22),
        0.8 * distribution(B, N, seed=23),
        distribution(B, R, N, seed=24),
    )
    douts = (rand(B, N, N, seed=25), rand(B, R, N, seed=26), rand(B, R, N, seed=27))

    def reference(previous, precedence, write, reads):
        link = dm.link(previous, precedence, write)
        return (link, *dm.directional_weights(link, reads))

    new = dm.links_forward(previous, precedence, write, reads)
    close(new, reference(previous, precedence, write, reads))
    close(
        dm.links_grad(*douts, previous, precedence, write, reads, new[0]),
        vjp(reference, [previous, precedence, write, reads], douts),
    )


def test_interface_order_is_a_permutation_of_the_interface_layer():
    model = build_model("dnc", 3, 2, controller_size=5, memory_size=6, memory_width=4, read_heads=2)
    assert sorted(model.interface_order.tolist()) == list(range(sum(model.interface_split)))


CONFIGS = {
    "one-read-head": {},
    "three-read-heads": {"read_heads": 3},
    "clip-active": {
        "read_heads": 2,
        "clip": 0.3,
    },  # most interface outputs clamped: the mask matters
}


def model_for(config, seed=0):
    torch.manual_seed(seed)
    return build_model(
        "dnc", 3, 2, controller_size=5, memory_size=6, memory_width=4, **CONFIGS[config]
    ).double()


def inputs(steps=9, seed=1):
    return torch.randn(
        steps, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )


@pytest.mark.parametrize("config", CONFIGS)
def test_fused_equals_the_step_loop_in_outputs_and_every_gradient(config):
    """9 steps on 6 locations: the memory fills, so the allocation's order changes mid-sequence."""
    assert_fused_equals_the_step_loop(model_for(config), inputs().requires_grad_(True))


def test_gradcheck_of_the_fused_function_in_every_input():
    model, x = model_for("three-read-heads"), inputs(steps=5)
    # the all-zero initial state: not learned, so not checked
    operands = model.fused_operands(x.shape[1])
    args = [t.detach().clone().contiguous().requires_grad_(True) for t in (x, *operands.weights)]

    def fn(x, *weights):
        return fused_engine.Sequence.apply(
            model.fused_steps, model.layout, model.kernels, x, *operands.state, *weights
        )[:2]

    assert torch.autograd.gradcheck(fn, args)


@pytest.mark.parametrize("steps", [7, 9])
def test_chunked_kernels_with_padding_equal_the_whole_sequence(steps):
    """compile_step's chunks (here eager chunk functions of 3 steps; 7 steps need padding)."""
    model, x = model_for("three-read-heads"), inputs(steps).requires_grad_(True)
    whole = outputs_and_grads(model, x)
    model.kernels = fused_engine.Kernels(chunk=3)
    chunked = outputs_and_grads(model, x)
    assert chunked[0].shape == (steps, 2, 2)
    for a, e in zip(chunked[:2], whole[:2]):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=1e-10)
    for name in whole[2]:
        torch.testing.assert_close(
            chunked[2][name], whole[2][name], atol=1e-12, rtol=1e-10, msg=name
        )


def test_seeds_forward_equals_each_seed_alone_in_outputs_and_gradients():
    """K seeds in one fused pass (per-seed weights, K*B sequences through the memory ops)."""
    models = [model_for("three-read-heads", seed) for seed in range(3)]
    stacked, buffers = torch.func.stack_module_state(models)
    x = torch.randn(3, 7, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert_each_seed_alone(models, x, models[0].seeds_forward({**stacked, **buffers}, x), stacked)
