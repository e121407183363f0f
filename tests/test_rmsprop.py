"""GravesRMSprop (benchmarks.harness.rmsprop): the Graves (2013) equations, how far it is from
torch's centered RMSprop, checkpoint round-trips and per-seed independence."""

import io

import pytest
import torch

from ntm_bench.benchmarks.harness.config import TrainConfig
from ntm_bench.benchmarks.harness.rmsprop import GravesRMSprop
from ntm_bench.benchmarks.harness.train import make_optimizer


def stepped(param: torch.Tensor, optimizer: torch.optim.Optimizer, grads) -> list[torch.Tensor]:
    """Apply `grads` one step each; returns the parameter after every step."""
    after = []
    for grad in grads:
        param.grad = grad.clone()
        optimizer.step()
        after.append(param.detach().clone())
    return after


def test_two_steps_match_the_equations_by_hand():
    # theta_0 = 1, lr 0.01, decay 0.95, momentum 0.9, eps 1e-4; n_0 = g_0 = delta_0 = 0.
    # Step 1, gradient 0.5:
    #   n_1 = 0.05 * 0.25 = 0.0125;  g_1 = 0.05 * 0.5 = 0.025;
    #   n_1 - g_1^2 = 0.0125 - 0.000625 = 0.011875
    #   sqrt(0.011875 + 1e-4) = sqrt(0.011975) = 0.1094303431...
    #   delta_1 = -0.01 * 0.5 / 0.1094303431 = -0.0456911662...;  theta_1 = 0.9543088338...
    # Step 2, gradient -0.2:
    #   n_2 = 0.95 * 0.0125 + 0.05 * 0.04 = 0.013875;  g_2 = 0.95 * 0.025 + 0.05 * -0.2 = 0.01375
    #   n_2 - g_2^2 = 0.013875 - 0.0001890625 = 0.0136859375;  sqrt(0.0137859375) = 0.1174135320...
    #   delta_2 = 0.9 * -0.0456911662 + 0.01 * 0.2 / 0.1174135320 = -0.0411220496 + 0.0170338117
    #           = -0.0240882379...;  theta_2 = 0.9302205959...
    param = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
    optimizer = GravesRMSprop([param], lr=0.01, decay=0.95, momentum=0.9, eps=1e-4)
    first, second = stepped(
        param,
        optimizer,
        [torch.tensor(0.5, dtype=torch.float64), torch.tensor(-0.2, dtype=torch.float64)],
    )
    assert first.item() == pytest.approx(0.9543088338, abs=1e-10)
    assert second.item() == pytest.approx(0.9302205959, abs=1e-10)
    state = optimizer.state[param]
    assert state["n"].item() == pytest.approx(0.013875, abs=1e-15)
    assert state["g_avg"].item() == pytest.approx(0.01375, abs=1e-15)
    assert state["delta"].item() == pytest.approx(-0.0240882379, abs=1e-10)


def test_first_step_is_smaller_than_torch_centered_rmsprop_by_the_eps_factor():
    # Gradient 1e-3: n_1 = 0.05e-6, g_1 = 0.05e-3, v = n_1 - g_1^2 = 5e-8 - 2.5e-9 = 4.75e-8.
    # Ours divides by sqrt(v + 1e-4) = sqrt(1.000475e-4) = 0.0100023747...; torch by
    # sqrt(v) + 1e-4 = 0.000217945 + 0.0001 = 0.000317945; ratio 0.0100023747 / 0.000317945
    # = 31.4595.
    ours = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    theirs = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    grad = torch.full((4,), 1e-3, dtype=torch.float64)
    stepped(ours, GravesRMSprop([ours], lr=1e-4), [grad])
    stepped(
        theirs,
        torch.optim.RMSprop([theirs], lr=1e-4, alpha=0.95, eps=1e-4, momentum=0.9, centered=True),
        [grad],
    )
    assert (theirs / ours).tolist() == pytest.approx([31.4595] * 4, rel=1e-5)


def test_state_dict_round_trip_resumes_bit_for_bit():
    generator = torch.Generator().manual_seed(0)
    init = torch.randn(5, 7, generator=generator)
    grads = [torch.randn(5, 7, generator=generator) * 10**-k for k in range(5)]

    whole = torch.nn.Parameter(init.clone())
    expected = stepped(whole, GravesRMSprop([whole], lr=1e-3), grads)[-1]

    first = torch.nn.Parameter(init.clone())
    optimizer = GravesRMSprop([first], lr=1e-3)
    stepped(first, optimizer, grads[:3])
    saved = io.BytesIO()  # as a checkpoint file would hold it
    torch.save({"param": first.detach(), "optimizer": optimizer.state_dict()}, saved)
    saved.seek(0)
    checkpoint = torch.load(saved)

    resumed = torch.nn.Parameter(checkpoint["param"].clone())
    optimizer = GravesRMSprop([resumed], lr=1e-3)
    optimizer.load_state_dict(checkpoint["optimizer"])
    assert torch.equal(stepped(resumed, optimizer, grads[3:])[-1], expected)


def test_rows_of_a_stacked_parameter_step_as_if_alone():
    generator = torch.Generator().manual_seed(1)
    init = torch.randn(2, 3, generator=generator)
    grads = [torch.randn(2, 3, generator=generator) * scale for scale in (1.0, 1e-3, 0.1)]
    stacked = torch.nn.Parameter(init.clone())
    together = stepped(stacked, GravesRMSprop([stacked], lr=1e-2), grads)[-1]
    for k in range(2):
        row = torch.nn.Parameter(init[k].clone())
        alone = stepped(row, GravesRMSprop([row], lr=1e-2), [g[k] for g in grads])[-1]
        assert torch.equal(together[k], alone)


def test_make_optimizer_uses_it_for_rmsprop():
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = make_optimizer([param], TrainConfig(optimizer="rmsprop", lr=1e-4, momentum=0.9))
    assert isinstance(optimizer, GravesRMSprop)
    assert {k: optimizer.defaults[k] for k in ("lr", "decay", "momentum", "eps")} == {
        "lr": 1e-4,
        "decay": 0.95,
        "momentum": 0.9,
        "eps": 1e-4,
    }
