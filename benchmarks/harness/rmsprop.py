"""RMSProp in the form of Graves (2013), "Generating sequences with recurrent neural networks",
eq. 38-41, the optimizer of the NTM paper (`train.optimizer: rmsprop`):

    n_i = ℵ n_{i-1} + (1 - ℵ) g²                          ℵ = decay (0.95)
    g_i = ℵ g_{i-1} + (1 - ℵ) g
    Δ_i = ג Δ_{i-1} - lr g / sqrt(n_i - g_i² + ε)          ג = momentum (0.9), ε = 1e-4
    θ_i = θ_{i-1} + Δ_i

for each gradient g, from n_0 = g_0 = Δ_0 = 0. Why not torch.optim.RMSprop(centered=True): it
divides by sqrt(n_i - g_i²) + ε, epsilon outside the root. On the centered variance v = n_i - g_i²
the two denominators differ by the factor sqrt(v + ε) / (sqrt(v) + ε), which grows as v falls
below ε = 1e-4: ~1.4x at v = 1e-4, ~3x at 1e-5, ~9x at 1e-6 (gradients that fluctuate by ~1e-3),
~50x at 1e-8 and 1/sqrt(ε) = 100x as v -> 0 (a steady gradient). Torch's steps are larger by that
factor, so its RMSprop with these hyperparameters is not the paper's optimizer.

Every operation is element-wise, so parameters stacked over seeds ([K, ...],
benchmarks/harness/batched.py) step exactly as K separate ones would. The state lives in
`self.state`, so state_dict() and load_state_dict() resume bit for bit.
"""

from __future__ import annotations

import torch


class GravesRMSprop(torch.optim.Optimizer):
    """Centered RMSProp with momentum, epsilon inside the square root (see the module docstring)."""

    def __init__(
        self, params, lr: float, decay: float = 0.95, momentum: float = 0.9, eps: float = 1e-4
    ):
        if not lr > 0 or not 0 <= decay < 1 or not 0 <= momentum < 1 or not eps > 0:
            raise ValueError(
                f"need lr > 0, 0 <= decay < 1, 0 <= momentum < 1, eps > 0; "
                f"got {lr!r}, {decay!r}, {momentum!r}, {eps!r}"
            )
        super().__init__(params, dict(lr=lr, decay=decay, momentum=momentum, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay, momentum, eps = group["lr"], group["decay"], group["momentum"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad, state = p.grad, self.state[p]
                # Names (and group keys) unlike torch.optim.RMSprop's, whose momentum_buffer is
                # scaled differently: a checkpoint of it raises KeyError in step instead of silently
                # mixing.
                if not state:
                    for key in ("n", "g_avg", "delta"):
                        state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
                n, g_avg, delta = state["n"], state["g_avg"], state["delta"]
                n.mul_(decay).addcmul_(grad, grad, value=1 - decay)
                g_avg.mul_(decay).add_(grad, alpha=1 - decay)
                # n - g_avg² >= 0 in exact arithmetic (Cauchy-Schwarz; the weights sum to <= 1), but
                # for a steady large gradient rounding can take it below -eps: sqrt would give NaN.
                denom = n.addcmul(g_avg, g_avg, value=-1).clamp_(min=0).add_(eps).sqrt_()
                delta.mul_(momentum).addcdiv_(grad, denom, value=-lr)
                p.add_(delta)
        return loss
