"""Hand-derived gradients (vector-Jacobian products) of the NTM memory operations in
models.ntm_memory, for the fused sequences, whose backward passes run these instead of recording
an autograd graph of ~100 small ops per time step. models.ntm_fused uses them all; models.dnc_fused
uses the content lookup's, the write's and softmax_grad, which stay here beside their forward
operations in models.ntm_memory (see its docstring for why the DNC shares the NTM's).

Each function takes the gradient of the operation's output (named d<output>) and what the
forward pass saved, and returns the gradients of the operation's inputs. Shapes as in
models.ntm_memory: B batch, H heads, N locations, M word width, S shift offsets. Every function is
checked against autograd in tests/test_ntm_fused.py.
"""

from __future__ import annotations

import torch

from models.ntm_memory import EPS


def softmax_grad(dout: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """y = softmax(x) along the last dim:  dx = y * (dy - sum_j dy_j y_j)."""
    return out * (dout - (dout * out).sum(-1, keepdim=True))


def write_grad(
    dnew: torch.Tensor,
    memory: torch.Tensor,
    weights: torch.Tensor,
    erase: torch.Tensor,
    add: torch.Tensor,
    keep: torch.Tensor,
):
    """M' = M * keep + w^T a,  keep(i, m) = prod_h q_h(i, m),  q_h(i, m) = 1 - w_h(i) e_h(m):

        dM = dM' * keep
        da_h(m) = sum_i w_h(i) dM'(i, m)
        dq_h = (dM' * M) * prod_{h' != h} q_h'
        dw_h(i) = sum_m dM'(i, m) a_h(m) - sum_m dq_h(i, m) e_h(m)
        de_h(m) = - sum_i dq_h(i, m) w_h(i)

    dnew, memory, keep [B, N, M]; weights [B, W, N]; erase, add [B, W, M].
    Returns (dmemory, dweights, derase, dadd). The product over the other heads is taken with
    exclusive cumulative products, not by dividing keep by q_h, which can be exactly 0.
    """
    dkeep = dnew * memory
    if weights.shape[1] == 1:
        dq = dkeep.unsqueeze(1)  # [B, 1, N, M]
    else:
        q = 1 - weights.unsqueeze(-1) * erase.unsqueeze(-2)  # [B, W, N, M]
        ones = torch.ones_like(q[:, :1])
        before = torch.cat([ones, q[:, :-1]], dim=1).cumprod(dim=1)
        after = torch.cat([q[:, 1:], ones], dim=1).flip(1).cumprod(dim=1).flip(1)
        dq = dkeep.unsqueeze(1) * before * after
    dweights = add @ dnew.transpose(1, 2) - (dq @ erase.unsqueeze(-1)).squeeze(-1)
    derase = -(weights.unsqueeze(-2) @ dq).squeeze(-2)
    return dnew * keep, dweights, derase, weights @ dnew


def sharpen_grad(dout: torch.Tensor, shifted: torch.Tensor, gamma: torch.Tensor, out: torch.Tensor):
    """w = p / sum_j p_j,  p = (w~ + eps)^gamma. With u = w * (dw - sum_j dw_j w_j):

        dw~ = gamma u / (w~ + eps)
        dgamma = sum_i u_i log(w~_i + eps)

    dout, shifted w~, out w [B, H, N]; gamma [B, H]. Returns (dshifted, dgamma).
    """
    u = out * (dout - (dout * out).sum(-1, keepdim=True))
    base = shifted + EPS
    return gamma.unsqueeze(-1) * u / base, (u * base.log()).sum(-1)


def shift_grad(
    dout: torch.Tensor,
    gated: torch.Tensor,
    shift: torch.Tensor,
    index: torch.Tensor,
    inverse: torch.Tensor,
):
    """w~(i) = sum_j s_j w^g((i - o_j) mod N):

        ds_j = sum_i dw~(i) w^g((i - o_j) mod N)
        dw^g(k) = sum_j s_j dw~((k + o_j) mod N)

    dout, gated w^g [B, H, N]; shift s [B, H, S]; index [S, N] from memory.shift_index(N, o) and
    inverse its inverse, memory.shift_index(N, -o). Returns (dgated, dshift).
    """
    dshift = (gated[..., index] @ dout.unsqueeze(-1)).squeeze(-1)
    dgated = (shift.unsqueeze(-2) @ dout[..., inverse]).squeeze(-2)
    return dgated, dshift


def interpolate_grad(
    dout: torch.Tensor, content: torch.Tensor, previous: torch.Tensor, gate: torch.Tensor
):
    """w^g = g w^c + (1 - g) w_prev:

        dw^c = g dw^g,  dw_prev = (1 - g) dw^g,  dg = sum_i dw^g_i (w^c_i - w_prev_i)

    dout, content, previous [B, H, N]; gate [B, H]. Returns (dcontent, dprevious, dgate).
    """
    g = gate.unsqueeze(-1)
    return g * dout, dout - g * dout, (dout * (content - previous)).sum(-1)


def content_grad(
    dout: torch.Tensor,
    memory: torch.Tensor,
    keys: torch.Tensor,
    strength: torch.Tensor,
    similarity: torch.Tensor,
    key_norm: torch.Tensor,
    row_norm: torch.Tensor,
    out: torch.Tensor,
):
    """w^c = softmax(beta K),  K(h, i) = k_h . M_i / D(h, i),  D = |k_h| |M_i| + eps. With
    dz = softmax_grad(dw^c, w^c) and dK = beta dz:

        dbeta_h = sum_i dz(h, i) K(h, i)
        ddot = dK / D,   dD = -dK K / D
        dk_h = sum_i ddot(h, i) M_i + (sum_i dD(h, i) |M_i|) k_h / |k_h|
        dM_i = sum_h ddot(h, i) k_h + (sum_h dD(h, i) |k_h|) M_i / |M_i|

    dout, similarity K, out w^c [B, H, N]; memory [B, N, M]; keys [B, H, M]; strength [B, H];
    key_norm [B, H, 1]; row_norm [B, 1, N]. Returns (dmemory, dkeys, dstrength). A zero key or
    row has a zero norm gradient (as torch.linalg.vector_norm's), hence the clamps.
    """
    dz = softmax_grad(dout, out)
    dstrength = (dz * similarity).sum(-1)
    denominator = key_norm * row_norm + EPS
    dsim = strength.unsqueeze(-1) * dz / denominator  # d similarity / d dot
    dden = -dsim * similarity  # dD, already over D
    dkeys = dsim @ memory + (dden @ row_norm.transpose(1, 2)) * keys / key_norm.clamp_min(1e-30)
    drow = (key_norm.transpose(1, 2) @ dden).transpose(1, 2)  # [B, N, 1]
    dmemory = dsim.transpose(1, 2) @ keys + drow * memory / row_norm.transpose(1, 2).clamp_min(
        1e-30
    )
    return dmemory, dkeys, dstrength
