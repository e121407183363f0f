"""NTM memory addressing, reading and writing as pure tensor functions (Graves et al. 2014, §3).

The readable reference: models.ntm_kernel runs the same equations as loops, with their hand-derived
gradients, and is tested against autograd through these. The content lookup (`content_weights`,
`cosine_parts`), `read` and the erase/add `write` stay here although the DNC uses them too: the DNC
paper defines them as the NTM's, so models.dnc_memory adds only what the DNC adds and imports these
(DNC -> NTM, never back).

Shapes: B batch, H heads, N memory locations, M word width, S shift offsets. Every function
takes all heads at once so a model step is a handful of tensor ops with no Python loop over
heads or batch, and nothing is mutated in place, so `torch.func.vmap` and `gradcheck` apply.

The epsilons are where a denominator or a power can reach zero: an all-zero memory row or key
(cosine), and a weighting with exact zeros raised to gamma >= 1 (sharpening).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

EPS = 1e-8


class NTMState(NamedTuple):
    """An NTM's recurrent state between steps: what the reference step (models.ntm) carries and
    the kernel (models.ntm_kernel, which models.ntm imports, hence here) starts from."""

    h: torch.Tensor  # controller output [B, C]
    c: torch.Tensor  # controller cell [B, C] (unused by the feed-forward controller)
    memory: torch.Tensor  # [B, N, M]
    weights: torch.Tensor  # previous weightings of all heads, reads first [B, R + W, N]
    reads: torch.Tensor  # previous read vectors [B, R, M]


def cosine_parts(memory: torch.Tensor, keys: torch.Tensor):
    """K[b,h,i] = k_h . M_i / (|k_h| |M_i| + eps), with the norms (for the fused backward).

    memory [B, N, M], keys [B, H, M] -> (K [B, H, N], |k_h| [B, H, 1], |M_i| [B, 1, N]).
    """
    dots = keys @ memory.transpose(1, 2)  # plain matmul: einsum adds permutes per call
    key_norm, row_norm = keys.norm(dim=-1, keepdim=True), memory.norm(dim=-1).unsqueeze(1)
    return dots / (key_norm * row_norm + EPS), key_norm, row_norm


def cosine_similarity(memory: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """K[b,h,i] = k_h . M_i / (|k_h| |M_i| + eps).

    memory [B, N, M], keys [B, H, M] -> [B, H, N].
    """
    return cosine_parts(memory, keys)[0]


def content_weights(
    memory: torch.Tensor, keys: torch.Tensor, strength: torch.Tensor
) -> torch.Tensor:
    """w^c_h(i) = exp(beta_h K[h,i]) / sum_j exp(beta_h K[h,j])   (paper eq. 5, 6).

    memory [B, N, M], keys [B, H, M], strength beta [B, H] (>= 0) -> [B, H, N].
    """
    return torch.softmax(strength.unsqueeze(-1) * cosine_similarity(memory, keys), dim=-1)


def interpolate(content: torch.Tensor, previous: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """w^g = g w^c + (1 - g) w_{t-1}   (paper eq. 7).

    content, previous [B, H, N], gate g [B, H] in [0, 1] -> [B, H, N].
    """
    gate = gate.unsqueeze(-1)
    return gate * content + (1 - gate) * previous


def shift_index(locations: int, offsets: torch.Tensor) -> torch.Tensor:
    """Gather index [S, N] with entry (j, i) = (i - offsets[j]) mod N, for `circular_shift`."""
    return (torch.arange(locations).unsqueeze(0) - offsets.unsqueeze(1)) % locations


def circular_shift(weights: torch.Tensor, shift: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """w~(i) = sum_j w^g(i - o_j mod N) s(j)   (paper eq. 8, a circular convolution).

    weights [B, H, N], shift s [B, H, S] (a distribution over the offsets o_j), index [S, N]
    from `shift_index` -> [B, H, N]. One gather builds all S shifted copies at once.
    """
    shifted = weights[..., index]  # [B, H, S, N]
    return (shift.unsqueeze(-2) @ shifted).squeeze(-2)


def sharpen(weights: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """w(i) = w~(i)^gamma / sum_j w~(j)^gamma   (paper eq. 9), gamma >= 1.

    weights [B, H, N], gamma [B, H] -> [B, H, N]. `w + eps` keeps the power and its gradient
    finite where a weight is exactly zero.
    """
    powered = (weights + EPS) ** gamma.unsqueeze(-1)
    return powered / powered.sum(dim=-1, keepdim=True)


def address(
    memory: torch.Tensor,
    previous: torch.Tensor,
    keys: torch.Tensor,
    strength: torch.Tensor,
    gate: torch.Tensor,
    shift: torch.Tensor,
    gamma: torch.Tensor,
    index: torch.Tensor,
) -> torch.Tensor:
    """The full NTM addressing pipeline: content -> interpolation -> shift -> sharpening."""
    content = content_weights(memory, keys, strength)
    gated = interpolate(content, previous, gate)
    return sharpen(circular_shift(gated, shift, index), gamma)


def read(memory: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """r_h = sum_i w_h(i) M(i)   (paper eq. 2).

    memory [B, N, M], weights [B, H, N] -> read vectors [B, H, M].
    """
    return weights @ memory


def write(
    memory: torch.Tensor, weights: torch.Tensor, erase: torch.Tensor, add: torch.Tensor
) -> torch.Tensor:
    """M_t(i) = M_{t-1}(i) prod_h (1 - w_h(i) e_h) + sum_h w_h(i) a_h   (paper eq. 3, 4).

    memory [B, N, M], weights [B, H, N], erase e [B, H, M] in [0, 1], add a [B, H, M] -> [B, N, M].
    With several write heads the erases multiply and the adds sum, so the order of the heads
    does not matter (paper §3.2).
    """
    return torch.baddbmm(memory * kept(weights, erase), weights.transpose(1, 2), add)


def kept(weights: torch.Tensor, erase: torch.Tensor) -> torch.Tensor:
    """The fraction of each cell a write keeps, keep(i, m) = prod_h (1 - w_h(i) e_h(m)).

    weights [B, H, N], erase [B, H, M] -> [B, N, M].
    """
    keep = 1 - weights.unsqueeze(-1) * erase.unsqueeze(-2)  # [B, H, N, M]
    return keep[:, 0] if keep.shape[1] == 1 else keep.prod(dim=1)
