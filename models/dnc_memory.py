"""DNC dynamic memory allocation and temporal links as pure tensor functions.

Graves et al., "Hybrid computing using a neural network with dynamic external memory", Nature 538
(2016), Methods, "Memory addressing". Content lookup, reading and the erase/add write are the
NTM's (models.ntm_memory.content_weights, read, write); this module holds what the DNC adds, the
readable reference that models.dnc_kernel runs as loops with hand-derived gradients.

Shapes: B batch, R read heads, N memory locations. There is one write head, so a write weighting
is [B, N]. All read heads are handled at once, nothing branches on data, and no input is mutated,
so `torch.func.vmap` and `gradcheck` apply.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

# Usage is floored at EPS before the allocation sort (as in the reference code): the cumulative
# product then never meets an exact zero, whose cumprod gradient is a slow special case, and
# every location keeps a non-zero allocation.
EPS = 1e-6


class DNCState(NamedTuple):
    """A DNC's recurrent state between steps: what the reference step (models.dnc) carries and
    the kernel (models.dnc_kernel, which models.dnc imports, hence here) starts from."""

    h: torch.Tensor  # controller output [B, C]
    c: torch.Tensor  # controller cell [B, C]
    memory: torch.Tensor  # [B, N, M]
    usage: torch.Tensor  # [B, N]
    link: torch.Tensor  # temporal link matrix [B, N, N]
    precedence: torch.Tensor  # [B, N]
    read_weights: torch.Tensor  # [B, R, N]
    write_weights: torch.Tensor  # [B, N]
    reads: torch.Tensor  # read vectors [B, R, M]


def retention(free_gates: torch.Tensor, read_weights: torch.Tensor) -> torch.Tensor:
    """psi_t = prod_i (1 - f^i_t w^{r,i}_{t-1})   (memory retention vector).

    free_gates f [B, R] in [0, 1], previous read weightings [B, R, N] -> [B, N]: how much of each
    location survives being freed by the heads that just read it.
    """
    keep = 1 - free_gates.unsqueeze(-1) * read_weights
    return keep[:, 0] if keep.shape[1] == 1 else keep.prod(dim=1)


def usage(
    previous: torch.Tensor, write_weights: torch.Tensor, retention: torch.Tensor
) -> torch.Tensor:
    """u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} o w^w_{t-1}) o psi_t   (usage vector).

    previous usage [B, N], the previous write weighting [B, N], retention psi_t [B, N] -> [B, N],
    every entry in [0, 1].
    """
    return (previous + write_weights - previous * write_weights) * retention


def allocation(usage: torch.Tensor) -> torch.Tensor:
    """a_t[phi_j] = (1 - u_t[phi_j]) prod_{i<j} u_t[phi_i]   (allocation weighting).

    usage [B, N] -> [B, N], where phi lists the locations in ascending order of usage, so the
    least-used location gets the most weight. Usage is floored first, u <- EPS + (1 - EPS) u.

    Ties and gradients: the sort is stable, so equal usages are taken in index order (the first
    write to a fresh, all-zero memory goes to location 0). The gradient flows through the sorted
    usage values back to their locations; the permutation is piecewise constant and gets none, as
    in the reference implementation. Where two usages are exactly equal the allocation jumps
    (swapping their ranks swaps their weights), so check gradients away from ties.
    """
    return allocation_parts(usage)[0]


def allocation_parts(usage: torch.Tensor):
    """`allocation` and what its gradient needs (models.dnc_kernel derives it): (a [B, N],
    the floored usage sorted ascending, the order phi that sorts it, and the exclusive cumulative
    product of the sorted usage, prod_{i<j} u[phi_i]), all [B, N]."""
    usage = EPS + (1 - EPS) * usage
    sorted_usage, order = torch.sort(usage, dim=-1, stable=True)
    # exclusive cumulative product: the product of the usages of all less-used locations
    before = torch.cumprod(F.pad(sorted_usage[..., :-1], (1, 0), value=1.0), dim=-1)
    return (
        torch.zeros_like(usage).scatter(-1, order, (1 - sorted_usage) * before),
        sorted_usage,
        order,
        before,
    )


def write_weighting(
    content: torch.Tensor,
    allocation: torch.Tensor,
    write_gate: torch.Tensor,
    allocation_gate: torch.Tensor,
) -> torch.Tensor:
    """w^w_t = g^w_t [g^a_t a_t + (1 - g^a_t) c^w_t]   (write weighting).

    content c^w [B, N] (the write key's lookup in M_{t-1}), allocation a [B, N], gates [B] in
    [0, 1] -> [B, N], summing to at most 1.
    """
    allocation_gate = allocation_gate.unsqueeze(-1)
    return write_gate.unsqueeze(-1) * (
        allocation_gate * allocation + (1 - allocation_gate) * content
    )


def precedence(previous: torch.Tensor, write_weights: torch.Tensor) -> torch.Tensor:
    """p_t = (1 - sum_i w^w_t[i]) p_{t-1} + w^w_t   (precedence weighting; p_0 = 0).

    previous p [B, N], write weighting [B, N] -> [B, N]: where the last write went.
    """
    return (1 - write_weights.sum(dim=-1, keepdim=True)) * previous + write_weights


def link(
    previous: torch.Tensor, previous_precedence: torch.Tensor, write_weights: torch.Tensor
) -> torch.Tensor:
    """L_t[i,j] = (1 - w^w_t[i] - w^w_t[j]) L_{t-1}[i,j] + w^w_t[i] p_{t-1}[j],  L_t[i,i] = 0.

    previous link L [B, N, N], previous precedence p_{t-1} [B, N], write weighting [B, N] ->
    [B, N, N]. L[i, j] is the degree to which location i was written right after location j;
    rows and columns sum to at most 1.
    """
    w = write_weights
    scale = (1 - w).unsqueeze(-1) - w.unsqueeze(-2)
    new = scale * previous + w.unsqueeze(-1) * previous_precedence.unsqueeze(-2)
    eye = torch.eye(w.shape[-1], dtype=torch.bool, device=w.device)
    return new.masked_fill(eye, 0.0)


def directional_weights(
    link: torch.Tensor, read_weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """f^i_t = L_t w^{r,i}_{t-1},  b^i_t = L_t^T w^{r,i}_{t-1}   (forward, backward weightings).

    link [B, N, N], previous read weightings [B, R, N] -> (forward [B, R, N], backward [B, R, N]):
    the locations written just after / just before the ones each head read last. Written as
    row vector times matrix, which is ~10x faster on CPU than matrix times column vector.
    """
    return torch.matmul(read_weights, link.transpose(-1, -2)), torch.matmul(read_weights, link)


def read_weighting(
    backward: torch.Tensor, content: torch.Tensor, forward: torch.Tensor, modes: torch.Tensor
) -> torch.Tensor:
    """w^{r,i}_t = pi^i_t[1] b^i_t + pi^i_t[2] c^{r,i}_t + pi^i_t[3] f^i_t   (read weighting).

    backward, content, forward [B, R, N], read modes pi [B, R, 3] (a distribution per head, in
    the order backward, content, forward) -> [B, R, N], summing to at most 1.
    """
    return torch.einsum("brkn,brk->brn", torch.stack([backward, content, forward], dim=2), modes)
