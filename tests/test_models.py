"""Models, parametrized over the registry: shapes, gradients, batch independence, gradcheck."""

import pytest
import torch

from ntm_bench.models import MODELS, build_model
from ntm_bench.models.base import CompiledSteps, SequenceModel

TINY = {
    "ntm": {"controller_size": 6, "memory_size": 5, "memory_width": 4},
    "ntm_ff": {"controller_size": 6, "memory_size": 5, "memory_width": 4},
    "lstm": {"hidden_size": 6, "num_layers": 2},
    "dnc": {"controller_size": 6, "memory_size": 5, "memory_width": 4},
    "transformer": {"d_model": 8, "num_layers": 2, "num_heads": 2, "feedforward": 16},
    "lstm_matched": {"params": 200},
}


def tiny(name, input_size=3, output_size=2, **extra):
    torch.manual_seed(0)
    return build_model(name, input_size, output_size, **{**TINY.get(name, {}), **extra})


def inputs(T=4, B=3, I=3, seed=0):
    return torch.randn(T, B, I, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", MODELS)
def test_output_shape(name):
    assert tiny(name)(inputs()).shape == (4, 3, 2)


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_finite_nonzero_gradient(name):
    model = tiny(name)
    model(inputs(T=6)).pow(2).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


@pytest.mark.parametrize("name", MODELS)
def test_sequence_alone_equals_inside_batch(name):
    model = tiny(name)
    x = inputs(B=4)
    together = model(x)
    for b in range(4):
        torch.testing.assert_close(
            model(x[:, b : b + 1])[:, 0], together[:, b], atol=1e-6, rtol=1e-5
        )


@pytest.mark.parametrize("name", MODELS)
def test_fresh_state_every_call(name):
    model = tiny(name)
    x = inputs()
    torch.testing.assert_close(model(x), model(x))


@pytest.mark.parametrize("name", [n for n in MODELS if MODELS[n].step is not SequenceModel.step])
@pytest.mark.parametrize("T", [1, 7, 9])
def test_chunked_unroll_with_padding_equals_the_step_loop(name, T):
    """compile_step's chunking (chunk 3: T=7 and T=1 need padding) with the eager chunk in place
    of the compiled one: the same logits and gradients as the plain step loop."""
    plain, chunked = tiny(name), tiny(name)
    plain.fused = chunked.fused = False  # the memory models' kernels: test_*_kernel.py
    chunked.compiled_steps = CompiledSteps(chunked.steps, 3)
    x = inputs(T=T)
    grads = []
    for model in (plain, chunked):
        out = model(x)
        out.pow(2).sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(chunked(x), plain(x), atol=0, rtol=0)
    assert chunked(x).shape == (T, 3, 2)
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-7, rtol=1e-6, msg=n)


@pytest.mark.parametrize("name", [n for n in MODELS if MODELS[n].has_memory])
def test_trace_shapes_and_weightings_are_distributions(name):
    # The DNC has exactly one write head, and its weightings are gated mixtures (write gate,
    # link-matrix read modes) that sum to at most 1 rather than exactly 1.
    dnc = name == "dnc"
    model = tiny(name, read_heads=2, **({} if dnc else {"write_heads": 3}))
    logits, trace = model(inputs(), trace=True)
    assert trace["read_weights"].shape == (4, 3, 2, 5)
    assert trace["write_weights"].shape == (4, 3, 1 if dnc else 3, 5)
    assert all((w >= 0).all() for w in trace.values())
    sums = trace["read_weights"].sum(-1)
    if dnc:
        assert (sums <= 1 + 1e-6).all() and (trace["write_weights"].sum(-1) <= 1 + 1e-6).all()
    else:
        torch.testing.assert_close(sums, torch.ones(4, 3, 2))


@pytest.mark.parametrize("memory_init", ["constant", "learned"])
def test_ntm_forward_gradcheck_two_read_two_write_heads(memory_init):
    model = tiny(
        "ntm", read_heads=2, write_heads=2, memory_init=memory_init, weighting_init="random"
    ).double()
    x = inputs(T=3, B=2).double().requires_grad_()
    params = [p for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]

    def forward(x, *flat):
        return torch.func.functional_call(model, dict(zip(names, flat)), (x,))

    assert torch.autograd.gradcheck(
        forward, (x, *[p.detach().clone().requires_grad_() for p in params])
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"read_heads": 0},
        {"write_heads": 0},
        {"memory_size": 2, "shift_range": 1},
        {"memory_init": "zeros"},
        {"controller": "gru"},
        {"controller_layers": 0},
        {"controller_layers": 1.5},
        {"controller": "feedforward", "controller_layers": 2},
    ],
)
def test_ntm_rejects_impossible_parameters(bad):
    with pytest.raises(ValueError):
        tiny("ntm", **bad)


def test_registry_names_select_the_controller():
    from ntm_bench.benchmarks.harness.constructors import defaults

    assert defaults(MODELS["ntm_ff"])["controller"] == "feedforward"
    assert defaults(MODELS["ntm"])["controller"] == "lstm"
    assert tiny("ntm_ff").controller == "feedforward" and tiny("ntm").controller == "lstm"


def test_a_two_layer_controller_stacks_its_cells():
    """controller_layers 2: the second cell reads [h of the first at t, its own h at t-1], and
    the heads and the output read the second; by hand for one step from the initial state."""
    torch.manual_seed(0)
    model = tiny("ntm", controller_layers=2).double()
    C = model.controller_size
    assert model.h0.shape == (2 * C,) and model.upper.shape == (1, 4 * C, 2 * C)
    x = torch.randn(1, 2, model.input_size, dtype=torch.float64)
    state = model.initial_state(2)
    h, c = model.control(x[0], state)

    def cell(gates, c_prev):
        i, f, o = torch.sigmoid(gates[:, : 3 * C]).chunk(3, -1)
        c_new = f * c_prev + i * torch.tanh(gates[:, 3 * C :])
        return o * torch.tanh(c_new), c_new

    reads = state.reads.flatten(1)
    h1, c1 = cell(
        model.controller_layer(torch.cat([x[0], reads, state.h[:, :C]], -1)), state.c[:, :C]
    )
    gates2 = torch.cat([h1, state.h[:, C:]], -1) @ model.upper[0].T + model.upper_bias[0]
    h2, c2 = cell(gates2, state.c[:, C:])
    torch.testing.assert_close(h, torch.cat([h1, h2], -1))
    torch.testing.assert_close(c, torch.cat([c1, c2], -1))
    logits, _ = model.step(x[0], state)
    reads_after = model.step(x[0], state)[1].reads.flatten(1)
    torch.testing.assert_close(logits, model.out(torch.cat([h2, reads_after], -1)))
