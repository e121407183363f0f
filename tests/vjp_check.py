"""Inputs and comparisons for the tests of hand-derived gradients (test_ntm_fused.py,
test_dnc_fused.py): float64 values and autograd's vector-Jacobian product as the reference, a
fused model against its own plain step loop, and K seeds' one pass against each seed alone."""

import torch


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def distribution(*shape, seed=0):
    return torch.softmax(rand(*shape, seed=seed), -1)


def vjp(fn, inputs, dout):
    """Autograd's vector-Jacobian product of fn at inputs (dout: one tensor, or a tuple for
    several outputs)."""
    inputs = [x.clone().requires_grad_(True) for x in inputs]
    return torch.autograd.grad(fn(*inputs), inputs, dout)


def close(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=1e-10)


def outputs_and_grads(model, x):
    """model(x), and the gradients of sin(logits).sum() in x (which requires grad) and every
    parameter."""
    model.zero_grad()
    x.grad = None
    logits = model(x)
    logits.sin().sum().backward()
    return logits.detach(), x.grad.clone(), {n: p.grad.clone() for n, p in model.named_parameters()}


def assert_fused_equals_the_step_loop(model, x):
    """A fused model (models.fused_model) against autograd through its plain step loop (`fused`
    off), the reference: logits, and the gradients in x and every parameter; and the forward-only
    path (evaluation), which keeps nothing, gives the same logits."""
    model.fused = False
    ref_out, ref_dx, ref_grads = outputs_and_grads(model, x)
    model.fused = True
    out, dx, grads = outputs_and_grads(model, x)
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(dx, ref_dx, atol=1e-12, rtol=1e-10)
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], atol=1e-12, rtol=1e-10, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(model(x), out)


def assert_each_seed_alone(models, x, together, stacked, atol=1e-12, rtol=1e-10):
    """together [K, T, B, O], the K seeds' logits from one pass on x [K, T, B, I], against each
    model run alone on its x[k]: logits, and the gradients of sin(logits).sum() in `stacked`
    (name -> the stacked parameter, [K, ...]) against each model's own."""
    together.sin().sum().backward()
    for k, model in enumerate(models):
        alone = model(x[k])
        alone.sin().sum().backward()
        torch.testing.assert_close(together[k], alone, atol=atol, rtol=rtol)
        for name, p in model.named_parameters():
            torch.testing.assert_close(
                stacked[name].grad[k], p.grad, atol=atol, rtol=rtol, msg=name
            )
