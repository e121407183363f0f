"""The DNC: each memory operation against a hand-computed example and gradcheck in float64, the
link matrix's invariants, read modes on a known write order, and the whole model (gradcheck,
vmap over stacked parameters, parameter count)."""

import copy
import warnings

import pytest
import torch

from ntm_bench.models import build_model
from ntm_bench.models import dnc_memory as dm

D = torch.float64


def t(values):
    return torch.tensor(values, dtype=D)


def test_retention_hand_example():
    free = t([[0.5, 1.0]])
    read = t([[[0.2, 0.8, 0.0], [0.5, 0.0, 0.5]]])
    # head 0 keeps (0.9, 0.6, 1), head 1 keeps (0.5, 1, 0.5)
    torch.testing.assert_close(dm.retention(free, read), t([[0.45, 0.6, 0.5]]))
    torch.testing.assert_close(dm.retention(free[:, :1], read[:, :1]), t([[0.9, 0.6, 1.0]]))


def test_usage_hand_example():
    # u + w - u w = (0.75, 0.5, 1), times psi
    got = dm.usage(t([[0.5, 0.0, 1.0]]), t([[0.5, 0.5, 0.0]]), t([[1.0, 0.5, 0.2]]))
    torch.testing.assert_close(got, t([[0.75, 0.25, 0.2]]))


def test_allocation_gives_the_least_used_location():
    usage = t([[0.9, 0.1, 0.5, 0.7]])
    # ascending usage: location 1 (0.1), 2 (0.5), 3 (0.7), 0 (0.9)
    # a1 = 0.9, a2 = 0.5 * 0.1, a3 = 0.3 * 0.1 * 0.5, a0 = 0.1 * 0.1 * 0.5 * 0.7
    got = dm.allocation(usage)
    torch.testing.assert_close(got, t([[0.0035, 0.9, 0.05, 0.015]]), atol=1e-5, rtol=0)
    assert got.argmax().item() == 1
    u = dm.EPS + (1 - dm.EPS) * usage[0]  # exactly, with the floor
    torch.testing.assert_close(got[0, 1], 1 - u[1])
    torch.testing.assert_close(got[0, 0], (1 - u[0]) * u[1] * u[2] * u[3])


def test_allocation_ties_go_to_the_lowest_index_and_full_memory_gets_nothing():
    fresh = dm.allocation(torch.zeros(2, 4, dtype=D))
    assert (fresh.argmax(-1) == 0).all()
    torch.testing.assert_close(fresh[0, :2], t([1 - dm.EPS, (1 - dm.EPS) * dm.EPS]))
    assert dm.allocation(torch.ones(1, 4, dtype=D)).abs().max() < 1e-12


def test_write_weighting_hand_example():
    got = dm.write_weighting(t([[0.2, 0.8]]), t([[1.0, 0.0]]), t([0.5]), t([0.25]))
    torch.testing.assert_close(got, t([[0.2, 0.3]]))  # 0.5 * (0.25 a + 0.75 c)


def test_precedence_hand_example():
    got = dm.precedence(t([[0.5, 0.5, 0.0]]), t([[0.0, 0.2, 0.6]]))
    torch.testing.assert_close(got, t([[0.1, 0.3, 0.6]]))  # 0.2 p + w


PREVIOUS_LINK = t([[[0.0, 0.5, 0.3], [0.2, 0.0, 0.1], [0.0, 0.4, 0.0]]])


def test_link_hand_example():
    w, p = t([[0.5, 0.25, 0.0]]), t([[0.2, 0.2, 0.6]])
    # e.g. L[0,1] = (1 - 0.5 - 0.25) 0.5 + 0.5 * 0.2 = 0.225;  L[0,2] = 0.5 * 0.3 + 0.5 * 0.6 = 0.45
    expected = t([[[0.0, 0.225, 0.45], [0.1, 0.0, 0.225], [0.0, 0.3, 0.0]]])
    torch.testing.assert_close(dm.link(PREVIOUS_LINK, p, w), expected)
    # a full write to location 2: its row becomes p_{t-1}, its column is erased
    full = dm.link(PREVIOUS_LINK, p, t([[0.0, 0.0, 1.0]]))
    torch.testing.assert_close(full, t([[[0.0, 0.5, 0.0], [0.2, 0.0, 0.0], [0.2, 0.2, 0.0]]]))


def test_directional_and_read_weighting_hand_example():
    read = t([[[0.0, 1.0, 0.0]]])
    forward, backward = dm.directional_weights(PREVIOUS_LINK, read)
    torch.testing.assert_close(forward, t([[[0.5, 0.0, 0.4]]]))  # column 1 of L
    torch.testing.assert_close(backward, t([[[0.2, 0.0, 0.1]]]))  # row 1 of L
    content = t([[[0.1, 0.1, 0.8]]])
    got = dm.read_weighting(backward, content, forward, t([[[0.5, 0.25, 0.25]]]))
    torch.testing.assert_close(got, t([[[0.1 + 0.025 + 0.125, 0.025, 0.05 + 0.2 + 0.1]]]))


def random_write(g, B, N):
    """A write weighting summing to less than 1, as a gated DNC write is."""
    return torch.rand(B, 1, generator=g, dtype=D) * torch.softmax(
        3 * torch.randn(B, N, generator=g, dtype=D), -1
    )


def test_link_invariants_after_random_updates():
    g = torch.Generator().manual_seed(0)
    B, N = 3, 6
    link, prec = torch.zeros(B, N, N, dtype=D), torch.zeros(B, N, dtype=D)
    for _ in range(20):
        w = random_write(g, B, N)
        link = dm.link(link, prec, w)
        prec = dm.precedence(prec, w)
        assert (link >= 0).all()
        assert (link.sum(-1) <= 1 + 1e-12).all() and (link.sum(-2) <= 1 + 1e-12).all()
        assert (link.diagonal(dim1=-2, dim2=-1) == 0).all()
        assert (prec.sum(-1) <= 1 + 1e-12).all()
    assert link.sum() > 0.5  # not trivially all zero


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [3, 0, 4, 1, 2]])
def test_read_modes_follow_the_write_order(order):
    N = len(order)
    link, prec = torch.zeros(1, N, N, dtype=D), torch.zeros(1, N, dtype=D)
    eye = torch.eye(N, dtype=D)
    for location in order:  # one full write per step
        w = eye[location].unsqueeze(0)
        link, prec = dm.link(link, prec, w), dm.precedence(prec, w)
    # read heads sitting on every location at once: head h on location h
    reads = eye.unsqueeze(0)  # [1, R = N, N]
    forward, backward = dm.directional_weights(link, reads)
    for before, after in zip(order, order[1:]):
        torch.testing.assert_close(forward[0, before], eye[after])  # forward: the next write
        torch.testing.assert_close(backward[0, after], eye[before])  # backward: the previous one
    assert forward[0, order[-1]].sum() == 0 and backward[0, order[0]].sum() == 0
    content = torch.full((1, N, N), 1.0 / N, dtype=D)
    modes = {
        "backward": t([1.0, 0.0, 0.0]),
        "content": t([0.0, 1.0, 0.0]),
        "forward": t([0.0, 0.0, 1.0]),
    }
    for mode, expected in (("backward", backward), ("content", content), ("forward", forward)):
        got = dm.read_weighting(backward, content, forward, modes[mode].expand(1, N, 3))
        torch.testing.assert_close(got, expected)


def random_inputs(g, B=2, R=2, N=5):
    link = torch.rand(B, N, N, generator=g, dtype=D) / N
    return {
        "free_gates": torch.rand(B, R, generator=g, dtype=D),
        "read_weights": torch.softmax(torch.randn(B, R, N, generator=g, dtype=D), -1),
        "usage": torch.rand(B, N, generator=g, dtype=D),  # distinct: no ties in the sort
        "write_weights": random_write(g, B, N),
        "retention": torch.rand(B, N, generator=g, dtype=D),
        "content": torch.softmax(torch.randn(B, N, generator=g, dtype=D), -1),
        "allocation": torch.softmax(torch.randn(B, N, generator=g, dtype=D), -1),
        "gate": torch.rand(B, generator=g, dtype=D),
        "gate2": torch.rand(B, generator=g, dtype=D),
        "precedence": torch.softmax(torch.randn(B, N, generator=g, dtype=D), -1) * 0.9,
        "link": link - torch.diag_embed(link.diagonal(dim1=-2, dim2=-1)),
        "backward": torch.rand(B, R, N, generator=g, dtype=D),
        "read_content": torch.softmax(torch.randn(B, R, N, generator=g, dtype=D), -1),
        "forward": torch.rand(B, R, N, generator=g, dtype=D),
        "modes": torch.softmax(torch.randn(B, R, 3, generator=g, dtype=D), -1),
    }


OPERATIONS = {
    "retention": (dm.retention, ("free_gates", "read_weights")),
    "usage": (dm.usage, ("usage", "write_weights", "retention")),
    "allocation": (dm.allocation, ("usage",)),
    "write_weighting": (dm.write_weighting, ("content", "allocation", "gate", "gate2")),
    "precedence": (dm.precedence, ("precedence", "write_weights")),
    "link": (dm.link, ("link", "precedence", "write_weights")),
    "directional_weights": (dm.directional_weights, ("link", "read_weights")),
    "read_weighting": (dm.read_weighting, ("backward", "read_content", "forward", "modes")),
}


@pytest.mark.parametrize("name", OPERATIONS)
def test_gradcheck(name):
    fn, names = OPERATIONS[name]
    values = random_inputs(torch.Generator().manual_seed(1))
    assert torch.autograd.gradcheck(fn, tuple(values[n].requires_grad_() for n in names))


TINY = {"controller_size": 4, "memory_size": 4, "memory_width": 3, "read_heads": 2}


def tiny_dnc(seed=0, **extra):
    torch.manual_seed(seed)
    return build_model("dnc", 2, 2, **{**TINY, **extra})


@pytest.mark.parametrize(
    "size, T, fast",
    [
        ({"controller_size": 3, "memory_width": 2}, 3, False),
        ({"controller_size": 6, "memory_size": 5}, 6, True),
    ],
)
def test_dnc_forward_gradcheck_two_read_heads(size, T, fast):
    """Full Jacobians on the smallest instance; a random projection on a larger, longer one."""
    model = tiny_dnc(**size).double()
    x = torch.randn(T, 2, 2, generator=torch.Generator().manual_seed(0), dtype=D).requires_grad_()
    names = [n for n, _ in model.named_parameters()]

    def forward(x, *flat):
        return torch.func.functional_call(model, dict(zip(names, flat)), (x,))

    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    assert torch.autograd.gradcheck(forward, (x, *params), fast_mode=fast)


def test_vmap_over_stacked_parameters_equals_each_copy_alone():
    models = [tiny_dnc(seed) for seed in (0, 1)]
    params, buffers = torch.func.stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.randn(5, 3, 2, generator=torch.Generator().manual_seed(0))

    def run(p, b, x):
        return torch.func.functional_call(base, (p, b), (x,))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        together = torch.func.vmap(run, in_dims=(0, 0, None))(params, buffers, x)
        together.pow(2).sum().backward()
    assert not [w for w in caught if "batching rule" in str(w.message)], "a slow vmap fallback ran"
    for i, model in enumerate(models):
        torch.testing.assert_close(together[i], model(x), atol=1e-6, rtol=1e-5)
        model(x).pow(2).sum().backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(params[name].grad[i], p.grad, atol=1e-6, rtol=1e-5)


def test_parameter_count_at_the_copy_task_defaults():
    C, M, R, I, O = 100, 20, 1, 9, 8
    controller = (I + R * M + C) * 4 * C + 4 * C
    interface = C * (R * M + 5 * R + 3 * M + 3) + (R * M + 5 * R + 3 * M + 3)
    output = (C + R * M) * O + O
    assert build_model("dnc", I, O).n_params() == controller + interface + output == 61_856


@pytest.mark.parametrize(
    "bad",
    [
        {"read_heads": 0},
        {"memory_size": 0},
        {"controller_size": 0},
        {"memory_width": 1.5},
        {"clip": 0.0},
    ],
)
def test_dnc_rejects_impossible_parameters(bad):
    with pytest.raises(ValueError):
        tiny_dnc(**bad)
