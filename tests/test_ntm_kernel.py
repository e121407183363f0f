"""The NTM's native kernel (models.ntm_kernel) against autograd through the plain step loop
(`NTM.fused = False`), the reference, in float64: outputs, and the gradients of every parameter
and of the inputs, for both controllers, several head counts, batches, lengths and K seeds at
once; gradcheck of its autograd Function; float32 against float64; evaluation (no tape) against
the training forward; the memory's checkpoints (recomputed in the backward) against keeping
every step's."""

import pytest
import torch

from ntm_bench.models import build_model
from ntm_bench.models import ntm_kernel
from ntm_bench.models.fused_cell import seeds_logits
from ntm_bench.models.ntm_kernel import NTMSequence, ntm_sequence

I, O = 3, 2  # input and output sizes
SIZES = {"controller_size": 5, "memory_size": 6, "memory_width": 4}


def generator(seed):
    return torch.Generator().manual_seed(seed)


def ntm(controller, reads=1, writes=1, seed=0, **params):
    torch.manual_seed(seed)
    name = "ntm" if controller == "lstm" else "ntm_ff"
    kwargs = {**SIZES, "read_heads": reads, "write_heads": writes, **params}
    return build_model(name, I, O, **kwargs).double()


def kernel_logits(model, x):
    """The model's logits with the kernel in place of its sequence: x [T, B, I]."""
    hs, reads = ntm_sequence(model.layout, x, model.fused_operands(x.shape[1]))
    return model.out(torch.cat([hs, reads], -1))


def grads(loss, x, params: dict):
    """The gradients of loss in x and in each of params (name -> tensor)."""
    found = torch.autograd.grad(loss, [x, *params.values()])
    return found[0], dict(zip(params, found[1:]))


def assert_close(actual, expected, tol=1e-10, msg=None):
    torch.testing.assert_close(actual, expected, atol=tol, rtol=tol, msg=msg)


@pytest.fixture
def short_segments(monkeypatch):
    """Memory checkpoints every 4 steps (the default keeps one per ~1 MiB of memories: at these
    sizes one per sequence), so that the backward recomputes several segments."""
    monkeypatch.setattr(ntm_kernel, "checkpoint_steps", lambda steps, step_bytes: min(steps, 4))


@pytest.mark.parametrize("seeds", [1, 3])
@pytest.mark.parametrize("steps", [1, 30])
@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("heads", [(1, 1), (2, 1), (1, 2), (3, 2)], ids=lambda h: f"{h[0]}r{h[1]}w")
@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_kernel_equals_the_step_loop(controller, heads, batch, steps, seeds, short_segments):
    models = [ntm(controller, *heads, seed=k, memory_init="learned") for k in range(seeds)]
    check_against_the_step_loop(models, batch, steps)


@pytest.mark.parametrize("seeds", [1, 3])
@pytest.mark.parametrize("steps", [1, 30])
@pytest.mark.parametrize("layers", [2, 3])
def test_kernel_equals_the_step_loop_with_stacked_controller_layers(layers, steps, seeds):
    models = [
        ntm("lstm", 2, 1, seed=k, memory_init="learned", controller_layers=layers)
        for k in range(seeds)
    ]
    check_against_the_step_loop(models, 7, steps)


def check_against_the_step_loop(models, batch, steps):
    """Logits and the gradients of a random linear function of them, in the inputs and every
    parameter; with K seeds (len(models)), against each seed's model alone (its own parameters
    and inputs)."""
    seeds = len(models)
    x = torch.randn(seeds, steps, batch, I, dtype=torch.float64, generator=generator(1))
    x.requires_grad_(True)
    project = torch.randn(seeds, steps, batch, O, dtype=torch.float64, generator=generator(2))
    if seeds == 1:
        model = models[0]
        params = dict(model.named_parameters())
        logits = kernel_logits(model, x[0]).unsqueeze(0)
    else:
        params, buffers = torch.func.stack_module_state(models)
        tensors = {**params, **buffers}
        operands = models[0].fused_operands(batch, tensors, seeds)
        layout = models[0].layout._replace(seeds=seeds)
        hs, reads = ntm_sequence(layout, x.transpose(0, 1).flatten(1, 2), operands)
        logits = seeds_logits(hs, reads, seeds, tensors["out.weight"], tensors["out.bias"])
    dx, dparams = grads((logits * project).sum(), x, params)
    for k, model in enumerate(models):
        model.fused = False
        reference = model(x[k])
        assert_close(logits[k], reference)
        loss = (reference * project[k]).sum()
        ref_dx, ref_dparams = grads(loss, x, dict(model.named_parameters()))
        assert_close(dx[k], ref_dx[k], msg="inputs")
        for name, expected in ref_dparams.items():
            actual = dparams[name] if seeds == 1 else dparams[name][k]
            assert_close(actual, expected, msg=name)


CONFIGS = {
    "shift2-random": {"shift_range": 2, "memory_init": "random", "weighting_init": "random"},
    "constant-memory": {"read_heads": 2, "write_heads": 3},
    "clip-active": {"clip": 0.3},  # most head outputs clamped: the clamp's gradient mask matters
    "wide-shift": {"shift_range": 3, "memory_size": 7},  # S = N: every offset, both wrap-arounds
    "two-layers": {"controller_layers": 2, "read_heads": 2},
}


@pytest.mark.parametrize("config", CONFIGS)
def test_kernel_equals_the_step_loop_in_other_configurations(config):
    model = ntm("lstm", **CONFIGS[config])
    x = torch.randn(9, 2, I, dtype=torch.float64, generator=generator(3), requires_grad=True)
    params = dict(model.named_parameters())
    logits = kernel_logits(model, x)
    dx, dparams = grads(logits.sin().sum(), x, params)
    model.fused = False
    reference = model(x)
    ref_dx, ref_dparams = grads(reference.sin().sum(), x, params)
    assert_close(logits, reference)
    assert_close(dx, ref_dx, msg="inputs")
    for name in params:
        assert_close(dparams[name], ref_dparams[name], msg=name)


@pytest.mark.parametrize("layers", [1, 2])
def test_gradcheck_of_the_function_in_every_input(layers):
    model = ntm(
        "lstm", 2, 2, memory_init="learned", weighting_init="random", controller_layers=layers
    )
    x = torch.randn(4, 2, I, dtype=torch.float64, generator=generator(4))
    operands = model.fused_operands(x.shape[1])
    inputs = [x, *operands.state, *operands.weights]
    inputs = [t.detach().clone().contiguous().requires_grad_(True) for t in inputs]

    def fn(*args):
        return NTMSequence.apply(model.layout, *args)

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_float32_agrees_with_float64(controller):
    double = ntm(controller, 2, 1, memory_init="learned")
    single = ntm(controller, 2, 1, memory_init="learned").float()
    x = torch.randn(30, 7, I, dtype=torch.float64, generator=generator(5))
    results = []
    for model, inputs in ((double, x), (single, x.float())):
        inputs = inputs.clone().requires_grad_(True)
        params = dict(model.named_parameters())
        logits = kernel_logits(model, inputs)
        dx, dparams = grads(logits.sin().sum(), inputs, params)
        results.append((logits, dx, dparams))
    (logits, dx, dparams), (logits32, dx32, dparams32) = results
    assert logits32.dtype == torch.float32
    check = lambda a, e, msg=None: torch.testing.assert_close(
        a.double(), e, atol=1e-5, rtol=1e-4, msg=msg
    )
    check(logits32, logits)
    check(dx32, dx, "inputs")
    for name in dparams:
        check(dparams32[name], dparams[name], name)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_evaluation_keeps_no_tape_and_gives_the_training_outputs(dtype):
    model = ntm("lstm", 2, 2, memory_init="learned").to(dtype)
    x = torch.randn(30, 7, I, dtype=dtype, generator=generator(6))
    training = kernel_logits(model, x)
    assert training.requires_grad
    with torch.no_grad():
        evaluation = kernel_logits(model, x)
        out = ntm_kernel.run_forward(
            model.layout, x, model.fused_operands(7).state, model.fused_operands(7).weights, False
        )
    assert torch.equal(evaluation, training.detach())
    # one step of scratch, not 30 (upper_in, act and tanh_c have the layers' axis first)
    assert all(array.shape[1 if k in (1, 2, 3) else 0] == 1 for k, array in enumerate(out.tape))
    cells, memories, weights, checkpoints = out.states
    assert cells.shape[1] == len(memories) == len(weights) == 2 and len(checkpoints) == 0


@pytest.mark.parametrize("every", [1, 3, 7, 30])
def test_memory_checkpoints_give_the_same_gradients_as_one_segment(every, monkeypatch):
    """The backward recomputes the memory between checkpoints with the forward's own write, so
    any spacing gives the same numbers, bit for bit."""
    model = ntm("lstm", 2, 2, memory_init="learned")
    x = torch.randn(30, 3, I, dtype=torch.float64, generator=generator(7), requires_grad=True)
    params = dict(model.named_parameters())
    results = []
    for spacing in (30, every):
        monkeypatch.setattr(ntm_kernel, "checkpoint_steps", lambda steps, size, k=spacing: k)
        logits = kernel_logits(model, x)
        results.append((logits, *grads(logits.sin().sum(), x, params)))
    (logits, dx, dparams), (logits_k, dx_k, dparams_k) = results
    assert torch.equal(logits_k, logits) and torch.equal(dx_k, dx)
    for name in params:
        assert torch.equal(dparams_k[name], dparams[name]), name


def test_head_order_is_a_permutation_of_the_heads_layer():
    order = ntm_kernel.head_order(2, 3, 4, 5)
    A = 4 + 5 + 3
    assert sorted(order.tolist()) == list(range(2 * A + 3 * (A + 2 * 4)))
