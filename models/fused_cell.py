"""What the native kernels' torch side shares: the linear layers around a kernel, per seed when
several seeds run as one pass: the inputs' share of the controller for the whole sequence
(`input_gates`, before the kernel), the two layers' weight gradients summed over every step
(`layer_grads`, after its backward) and the K seeds' output layer (`seeds_logits`).

Rows are ordered (time, seed, batch) or (seed, batch): seed-major, so seed k's rows are one
contiguous block and a per-seed linear layer is one batched matmul.
"""

from __future__ import annotations

import torch


def affine(seeds: int, x, w, base=None):
    """base + x @ w, each seed with its own w: x [K*B, n] with rows seed-major, w [n, m] (one
    seed) or [K, n, m]; base broadcastable to [K*B, m], or [K, 1, m] per seed (a bias)."""
    if seeds == 1:
        return x @ w if base is None else torch.addmm(base, x, w)
    x = x.view(seeds, -1, x.shape[-1])
    out = x @ w if base is None else torch.baddbmm(base.view(seeds, -1, base.shape[-1]), x, w)
    return out.flatten(0, 1)


def per_seed(rows, seeds: int, batch: int):
    """Rows ordered (time, seed, batch) [T*K*B, n] -> [K, T*B, n]."""
    return rows.unflatten(0, (-1, seeds, batch)).transpose(0, 1).flatten(1, 2)


def weight_grads(seeds: int, batch: int, dout, x):
    """(sum over rows of dout^T x, sum over rows of dout), per seed when seeds > 1: the gradients
    of a linear layer's weight [(K,) m, n] and bias [(K,) m] from rows (time, seed, batch)."""
    if seeds == 1:
        return dout.t() @ x, dout.sum(0)
    dout = per_seed(dout, seeds, batch)
    return dout.transpose(1, 2) @ per_seed(x, seeds, batch), dout.sum(1)


def layer_grads(seeds: int, x, state_in, hs, dgates, dlayer, w_ctrl, want_dx: bool):
    """The gradients a fused sequence's backward returns for its two linear layers and inputs:
    (dx [T, B, I] or None, controller weight and bias, second layer's weight and bias). x [T, B,
    I], state_in [T, B, ...] (the controller's non-input rows), hs [T, B, C] (the
    second layer's input); dgates, dlayer [T*B, ...]: the gradients of the two layers' outputs."""
    T, B = x.shape[:2]
    batch = B // seeds
    dw_ctrl, db_ctrl = weight_grads(
        seeds, batch, dgates, torch.cat([x, state_in], -1).flatten(0, 1)
    )
    dw_layer, db_layer = weight_grads(seeds, batch, dlayer, hs.flatten(0, 1))
    dx = None
    if want_dx:
        I = x.shape[-1]
        dx = affine(seeds, dgates.view(T, B, -1).transpose(0, 1).flatten(0, 1), w_ctrl[..., :I])
        dx = dx.view(B, T, -1).transpose(0, 1)
    return dx, dw_ctrl, db_ctrl, dw_layer, db_layer


def seeds_logits(hs, reads, seeds: int, weight, bias):
    """The output layer of K seeds' fused pass: hs [T, K*B, C] and reads [T, K*B, R*M] (rows
    seed-major) through per-seed weight [K, O, F] and bias [K, O] -> logits [K, T, B, O]."""
    T = hs.shape[0]
    features = torch.cat([hs, reads], -1).view(T, seeds, -1, hs.shape[-1] + reads.shape[-1])
    features = features.transpose(0, 1).flatten(1, 2)  # [K, T*B, F]
    logits = torch.baddbmm(bias.unsqueeze(1), features, weight.transpose(1, 2))
    return logits.view(seeds, T, -1, logits.shape[-1])


def input_gates(seeds: int, inputs, w_in_t, bias):
    """The inputs' share of a controller's pre-activations for the whole sequence at once:
    inputs [T, B, I] (rows (seed, batch)) @ w_in_t [(K,) I, G] + bias [(K,) G] -> [T, B, G]."""
    T, B = inputs.shape[:2]
    if seeds == 1:
        return torch.addmm(bias, inputs.flatten(0, 1), w_in_t).view(T, B, -1)
    x = per_seed(inputs.flatten(0, 1), seeds, B // seeds)  # [K, T*B/K, I]
    gates = torch.baddbmm(bias.unsqueeze(1), x, w_in_t)
    return gates.unflatten(1, (T, -1)).transpose(0, 1).flatten(1, 2)
