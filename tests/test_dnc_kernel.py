"""The DNC's native kernel (models.dnc_kernel) against autograd through the plain step loop
(`DNC.fused = False`), the reference, in float64: outputs and the gradients of every parameter
and of the inputs; gradcheck of its autograd Function; float32 against float64; evaluation
(no tape) against the training forward.

The kernel keeps the link matrix only every `segment` steps and remakes the rest backward; the
fixture below shrinks its cache budget so that these tiny memories get segments of two steps
(checkpoints and remade matrices both in play) instead of one segment for the whole sequence."""

import pytest
import torch

from ntm_bench.models import build_model
from ntm_bench.models import dnc_kernel as dk
from ntm_bench.models.fused_cell import seeds_logits

SIZES = {"controller_size": 6, "memory_size": 6, "memory_width": 4}


@pytest.fixture(autouse=True)
def short_segments(monkeypatch):
    monkeypatch.setattr(dk, "LINK_CACHE", 1)  # blocking: segments of 2 steps, the least


def dnc(read_heads=1, seed=0, dtype=torch.float64, **sizes):
    torch.manual_seed(seed)
    model = build_model("dnc", 3, 2, read_heads=read_heads, **{**SIZES, **sizes})
    return model.to(dtype)


def randn(*shape, seed, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def kernel_logits(model, x):
    """The model's logits with its sequence by the kernel (grad on: DNCSequence)."""
    hs, reads = dk.dnc_sequence(model.layout, x, model.fused_operands(x.shape[1]))
    return model.out(torch.cat([hs, reads], -1))


def outputs_and_grads(model, x, logits_of, seed=3):
    """logits_of(model, x), and the gradients in x and every parameter of a random linear
    function of the logits."""
    model.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    logits = logits_of(model, x)
    (logits * randn(*logits.shape, seed=seed).to(logits.dtype)).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return logits.detach(), x.grad, grads


def reference_logits(model, x):
    model.fused = False
    try:
        return model(x)
    finally:
        model.fused = True


def assert_close(actual, expected, rtol=1e-10, atol=1e-12, msg=None):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=msg)


@pytest.mark.parametrize("read_heads", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("steps", [1, 30])
def test_outputs_and_gradients_equal_the_step_loop(read_heads, batch, steps):
    """30 steps on 6 locations: the memory fills and the allocation's order changes; batch 7 in
    blocks of 2 leaves a block of one row."""
    model = dnc(read_heads)
    x = randn(steps, batch, 3, seed=1)
    out, dx, grads = outputs_and_grads(model, x, kernel_logits)
    ref_out, ref_dx, ref_grads = outputs_and_grads(model, x, reference_logits)
    assert_close(out, ref_out)
    assert_close(dx, ref_dx)
    for name in ref_grads:
        assert_close(grads[name], ref_grads[name], msg=name)


@pytest.mark.parametrize("read_heads", [1, 3])
def test_odd_memory_and_a_clip_that_acts(read_heads):
    """7 locations (one head's row pairs leave a row), and a clip of 0.3 that clamps most of the
    interface (its mask matters)."""
    model = dnc(read_heads, memory_size=7, clip=0.3)
    x = randn(9, 3, 3, seed=2)
    out, dx, grads = outputs_and_grads(model, x, kernel_logits)
    ref_out, ref_dx, ref_grads = outputs_and_grads(model, x, reference_logits)
    assert_close(out, ref_out)
    assert_close(dx, ref_dx)
    for name in ref_grads:
        assert_close(grads[name], ref_grads[name], msg=name)


@pytest.mark.parametrize("read_heads", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("steps", [1, 30])
def test_three_seeds_at_once_equal_each_seed_alone(read_heads, batch, steps):
    """K = 3 seeds in one pass (per-seed weights, rows seed-major, as FusedModel.seeds_forward)
    against three models run one by one through the step loop."""
    models = [dnc(read_heads, seed) for seed in range(3)]
    stacked, buffers = torch.func.stack_module_state(models)
    tensors = {**stacked, **buffers}
    x = randn(3, steps, batch, 3, seed=4)
    layout = models[0].layout._replace(seeds=3)
    hs, reads = dk.dnc_sequence(
        layout, x.transpose(0, 1).flatten(1, 2), models[0].fused_operands(batch, tensors, 3)
    )
    together = seeds_logits(hs, reads, 3, tensors["out.weight"], tensors["out.bias"])
    weights = randn(*together.shape, seed=5)
    (together * weights).sum().backward()
    for k, model in enumerate(models):
        alone = reference_logits(model, x[k])
        (alone * weights[k]).sum().backward()
        assert_close(together[k].detach(), alone.detach())
        for name, p in model.named_parameters():
            assert_close(stacked[name].grad[k], p.grad, msg=name)


@pytest.mark.parametrize("read_heads", [1, 2])
def test_gradcheck_in_the_inputs_every_weight_and_the_initial_state(read_heads):
    """A random initial state (usage without ties: the allocation's sort order has no gradient
    and a finite difference must not reorder it; a link matrix with a zero diagonal, as every
    link matrix has) so that the state's gradients are checked too."""
    model = dnc(read_heads, controller_size=4, memory_size=5, memory_width=3)
    B, R, N, M = 2, read_heads, 5, 3
    x = randn(4, B, 3, seed=6)
    operands = model.fused_operands(B)
    link = torch.rand(B, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    state = operands.state._replace(
        h=randn(B, 4, seed=8).tanh(),
        c=randn(B, 4, seed=9),
        memory=randn(B, N, M, seed=10),
        usage=torch.linspace(0.05, 0.9, B * N, dtype=torch.float64).view(B, N),
        link=0.2 * link * (1 - torch.eye(N, dtype=torch.float64)),
        precedence=0.5 * torch.softmax(randn(B, N, seed=11), -1),
        read_weights=torch.softmax(randn(B, R, N, seed=12), -1),
        write_weights=0.5 * torch.softmax(randn(B, N, seed=13), -1),
        reads=randn(B, R, M, seed=14),
    )
    args = [
        t.detach().clone().contiguous().requires_grad_(True) for t in (x, *state, *operands.weights)
    ]

    def fn(*args):
        return dk.DNCSequence.apply(model.layout, *args)

    assert torch.autograd.gradcheck(fn, args)


def test_float32_agrees_with_float64():
    """Outputs and gradients within ~1e-4 of the largest of each (float32 rounding over 30
    steps, and exp, sigmoid and tanh by dnc_kernel.exp in each dtype)."""
    x = randn(30, 7, 3, seed=15)
    results = {}
    for dtype in (torch.float32, torch.float64):
        model = dnc(2, dtype=dtype)
        results[dtype] = outputs_and_grads(model, x.to(dtype), kernel_logits)
    single, double = results[torch.float32], results[torch.float64]
    for a, e in [*zip(single[:2], double[:2]), *zip(single[2].values(), double[2].values())]:
        assert a.dtype == torch.float32
        scale = e.abs().max().item()
        torch.testing.assert_close(a.double(), e, rtol=1e-4, atol=1e-4 * scale)


def test_evaluation_keeps_no_tape_and_gives_the_training_outputs():
    """Without grad the forward alone runs: the same outputs as with the tape, and nothing kept
    grows with the sequence (two slots at most: the state before and after a step)."""
    model = dnc(2)
    x = randn(30, 7, 3, seed=16)
    operands = model.fused_operands(7)
    hs, reads = dk.dnc_sequence(model.layout, x, operands)
    assert hs.requires_grad
    with torch.no_grad():
        eval_hs, eval_reads = dk.dnc_sequence(model.layout, x, operands)
        out = dk.forward_pass(model.layout, x, operands.state, operands.weights, save=False)
    assert torch.equal(eval_hs, hs.detach()) and torch.equal(eval_reads, reads.detach())
    assert torch.equal(out.hs, eval_hs)
    assert max(len(field) for field in out.tape) <= 2


def test_interleaved_sequences_keep_their_own_tapes():
    """Two sequences forward, then backward in reverse order: each backward reads its own tape
    (tapes are reused only once their graph is gone)."""
    model = dnc(1)
    xs = [randn(12, 3, 3, seed=s) for s in (17, 18)]
    alone = [outputs_and_grads(model, x, kernel_logits) for x in xs]
    model.zero_grad()
    inputs = [x.clone().requires_grad_(True) for x in xs]
    logits = [kernel_logits(model, x) for x in inputs]
    for n in (1, 0):
        grads = torch.autograd.grad(
            (logits[n] * randn(*logits[n].shape, seed=3)).sum(), [inputs[n], *model.parameters()]
        )
        assert_close(logits[n].detach(), alone[n][0], rtol=0, atol=0)
        assert_close(grads[0], alone[n][1], rtol=0, atol=0)
        for g, expected in zip(grads[1:], alone[n][2].values()):
            assert_close(g, expected, rtol=0, atol=0)


def test_any_segment_length_gives_the_same_results(monkeypatch):
    """Link checkpoints every 2 steps (the fixture's), every 3, and none (one segment)."""
    model = dnc(2)
    x = randn(11, 5, 3, seed=19)
    matrices = 2 * 6 * 6 * 8  # a block of 2 rows' link matrices, float64: 3 of them per segment
    results = []
    for cache in (1, 3 * matrices, 1 << 30):
        monkeypatch.setattr(dk, "LINK_CACHE", cache)
        results.append(outputs_and_grads(model, x, kernel_logits))
    assert dk.blocking(5, 6, 8)[1] >= len(x)  # the last: one segment
    for out, dx, grads in results[1:]:
        assert_close(out, results[0][0])
        assert_close(dx, results[0][1])
        for name in grads:
            assert_close(grads[name], results[0][2][name], msg=name)


def test_interface_order_is_a_permutation_of_the_interface_layer():
    model = build_model("dnc", 3, 2, controller_size=5, memory_size=6, memory_width=4, read_heads=2)
    assert sorted(model.interface_order.tolist()) == list(range(sum(model.interface_split)))


def test_a_reused_tape_gives_the_same_bits_as_a_fresh_one():
    """Tapes are kept for reuse once their graph is freed (dnc_kernel.SPARE): a field read before
    it is written would make a run depend on the one before it."""
    torch.manual_seed(0)
    model = build_model("dnc", 3, 2, **SIZES)
    x = torch.rand(9, 4, 3, generator=torch.Generator().manual_seed(1))

    def run():
        model.zero_grad()
        out = model(x)
        out.sum().backward()
        return [out.detach().clone(), *(p.grad.clone() for p in model.parameters())]

    dk.SPARE.clear()
    fresh = run()
    assert len(dk.SPARE) == 1, "the first run's tape is kept for reuse once its graph is freed"
    model(torch.rand(5, 2, 3)).sum().backward()  # another shape's tape in between
    for _ in range(2):  # then reused tapes
        assert all(torch.equal(a, b) for a, b in zip(fresh, run()))
