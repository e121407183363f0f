"""Each NTM memory operation against a hand-computed example, and gradcheck in float64."""

import math

import pytest
import torch

from ntm_bench.models import ntm_memory as mem

D = torch.float64


def test_cosine_similarity_hand_example():
    memory = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]], dtype=D)  # [1, 3, 2]
    keys = torch.tensor([[[3.0, 0.0]]], dtype=D)  # [1, 1, 2]
    got = mem.cosine_similarity(memory, keys)
    torch.testing.assert_close(got, torch.tensor([[[1.0, 0.0, 1 / math.sqrt(2)]]], dtype=D))


def test_cosine_similarity_zero_memory_is_finite():
    got = mem.cosine_similarity(torch.zeros(1, 4, 3, dtype=D), torch.zeros(1, 2, 3, dtype=D))
    assert torch.isfinite(got).all() and (got == 0).all()


def test_content_weights_hand_example():
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=D)
    keys = torch.tensor([[[1.0, 0.0]]], dtype=D)
    got = mem.content_weights(memory, keys, torch.tensor([[2.0]], dtype=D))
    e = math.exp(2.0)
    torch.testing.assert_close(got, torch.tensor([[[e / (e + 1), 1 / (e + 1)]]], dtype=D))


def test_interpolate_hand_example():
    got = mem.interpolate(
        torch.tensor([[[1.0, 0.0]]], dtype=D),
        torch.tensor([[[0.0, 1.0]]], dtype=D),
        torch.tensor([[0.25]], dtype=D),
    )
    torch.testing.assert_close(got, torch.tensor([[[0.25, 0.75]]], dtype=D))


def test_circular_shift_moves_weight_by_one_and_wraps():
    index = mem.shift_index(4, torch.tensor([-1, 0, 1]))
    w = torch.tensor([[[0.0, 0.0, 0.0, 1.0]]], dtype=D)  # all weight on the last location
    forward = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=D)  # shift +1
    torch.testing.assert_close(
        mem.circular_shift(w, forward, index), torch.tensor([[[1.0, 0.0, 0.0, 0.0]]], dtype=D)
    )
    mixed = torch.tensor([[[0.5, 0.5, 0.0]]], dtype=D)  # half -1, half stay
    torch.testing.assert_close(
        mem.circular_shift(w, mixed, index), torch.tensor([[[0.0, 0.0, 0.5, 0.5]]], dtype=D)
    )


def test_sharpen_hand_example():
    got = mem.sharpen(torch.tensor([[[0.5, 0.25, 0.25]]], dtype=D), torch.tensor([[2.0]], dtype=D))
    torch.testing.assert_close(
        got, torch.tensor([[[4 / 6, 1 / 6, 1 / 6]]], dtype=D), atol=1e-7, rtol=1e-7
    )


def test_read_hand_example():
    memory = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], dtype=D)
    got = mem.read(memory, torch.tensor([[[0.25, 0.75]]], dtype=D))
    torch.testing.assert_close(got, torch.tensor([[[2.5, 3.5]]], dtype=D))


def test_write_hand_example_two_heads():
    memory = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]], dtype=D)
    w = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]], dtype=D)  # head 0 on row 0, head 1 split
    erase = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=D)
    add = torch.tensor([[[2.0, 0.0], [0.0, 4.0]]], dtype=D)
    # row 0: (1*(1-1)*(1-0), 1*(1-0)*(1-0.5)) + (2, 0) + (0, 2) = (2, 2.5)
    # row 1: (1, 1*(1-0.5)) + (0, 2) = (1, 2.5)
    torch.testing.assert_close(
        mem.write(memory, w, erase, add), torch.tensor([[[2.0, 2.5], [1.0, 2.5]]], dtype=D)
    )


def test_write_head_order_does_not_matter():
    g = torch.Generator().manual_seed(0)
    memory, w = torch.rand(2, 5, 3, generator=g, dtype=D), torch.rand(2, 3, 5, generator=g, dtype=D)
    erase, add = (
        torch.rand(2, 3, 3, generator=g, dtype=D),
        torch.rand(2, 3, 3, generator=g, dtype=D),
    )
    flip = [2, 1, 0]
    torch.testing.assert_close(
        mem.write(memory, w, erase, add),
        mem.write(memory, w[:, flip], erase[:, flip], add[:, flip]),
    )


def random_inputs(g, B=2, H=2, N=5, M=3, S=3):
    return {
        "memory": torch.randn(B, N, M, generator=g, dtype=D),
        "previous": torch.softmax(torch.randn(B, H, N, generator=g, dtype=D), -1),
        "keys": torch.randn(B, H, M, generator=g, dtype=D),
        "strength": torch.rand(B, H, generator=g, dtype=D) * 3,
        "gate": torch.rand(B, H, generator=g, dtype=D),
        "shift": torch.softmax(torch.randn(B, H, S, generator=g, dtype=D), -1),
        "gamma": 1 + torch.rand(B, H, generator=g, dtype=D) * 2,
        "weights": torch.softmax(torch.randn(B, H, N, generator=g, dtype=D), -1),
        "erase": torch.rand(B, H, M, generator=g, dtype=D),
        "add": torch.randn(B, H, M, generator=g, dtype=D),
    }


INDEX = mem.shift_index(5, torch.tensor([-1, 0, 1]))
OPERATIONS = {
    "cosine_similarity": (mem.cosine_similarity, ("memory", "keys")),
    "content_weights": (mem.content_weights, ("memory", "keys", "strength")),
    "interpolate": (mem.interpolate, ("weights", "previous", "gate")),
    "circular_shift": (lambda w, s: mem.circular_shift(w, s, INDEX), ("weights", "shift")),
    "sharpen": (mem.sharpen, ("weights", "gamma")),
    "address": (
        lambda *a: mem.address(*a, INDEX),
        ("memory", "previous", "keys", "strength", "gate", "shift", "gamma"),
    ),
    "read": (mem.read, ("memory", "weights")),
    "write": (mem.write, ("memory", "weights", "erase", "add")),
}


@pytest.mark.parametrize("name", OPERATIONS)
def test_gradcheck(name):
    fn, names = OPERATIONS[name]
    values = random_inputs(torch.Generator().manual_seed(1))
    args = tuple(values[n].requires_grad_() for n in names)
    assert torch.autograd.gradcheck(fn, args)
