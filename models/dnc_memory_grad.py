"""Hand-derived gradients (vector-Jacobian products) of the DNC memory operations in
models.dnc_memory, for the fused DNC sequence (models.dnc_fused), as models.ntm_memory_grad holds
the NTM's (and the content lookup's and write's, which the DNC shares). The temporal links'
gradient is dnc_memory.links_grad, next to the custom autograd Function that uses it too.

Each function takes the gradient of the operation's output (named d<output>) and what the
forward pass computed, and returns the gradients of the operation's inputs. Shapes as in
models.dnc_memory: B batch, R read heads, N locations. Every function is checked against
autograd in tests/test_dnc_fused.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.dnc_memory import EPS


def retention_grad(dretention: torch.Tensor, free_gates: torch.Tensor, read_weights: torch.Tensor):
    """psi = prod_i q_i,  q_i = 1 - f_i w^{r,i}:

        dq_i = dpsi prod_{i' != i} q_i'
        df_i = -sum_n dq_i(n) w^{r,i}(n),   dw^{r,i} = -dq_i f_i

    dretention [B, N], free gates f [B, R], previous read weightings [B, R, N]. Returns
    (dfree_gates, dread_weights). The product over the other heads is taken with exclusive
    cumulative products, not by dividing psi by q_i, which can be exactly 0.
    """
    dq = dretention.unsqueeze(1)
    if read_weights.shape[1] > 1:
        q = 1 - free_gates.unsqueeze(-1) * read_weights
        ones = torch.ones_like(q[:, :1])
        before = torch.cat([ones, q[:, :-1]], dim=1).cumprod(dim=1)
        after = torch.cat([q[:, 1:], ones], dim=1).flip(1).cumprod(dim=1).flip(1)
        dq = dq * before * after
    return -(dq * read_weights).sum(-1), -dq * free_gates.unsqueeze(-1)


def usage_grad(
    dusage: torch.Tensor,
    previous: torch.Tensor,
    write_weights: torch.Tensor,
    retention: torch.Tensor,
):
    """u = v o psi,  v = u_prev + w - u_prev o w:

        dv = du o psi,  dpsi = du o v,  du_prev = dv o (1 - w),  dw = dv o (1 - u_prev)

    All [B, N]. Returns (dprevious, dwrite_weights, dretention).
    """
    dv = dusage * retention
    kept = previous + write_weights - previous * write_weights
    return dv * (1 - write_weights), dv * (1 - previous), dusage * kept


def allocation_grad(
    dallocation: torch.Tensor, sorted_usage: torch.Tensor, order: torch.Tensor, before: torch.Tensor
) -> torch.Tensor:
    """a[phi_j] = (1 - s_j) P_j,  P_j = prod_{i<j} s_i,  s = the floored usage sorted (phi):

        ds_j = -da[phi_j] P_j + (1 / s_j) sum_{k>j} da[phi_k] a[phi_k]
        du = (1 - EPS) ds, scattered back from rank j to location phi_j

    (a[phi_k] for k > j holds the factor s_j, so the quotient is exact; s_j >= EPS > 0.) The sum
    over k > j is an exclusive suffix sum: an inclusive one minus its own term would cancel
    catastrophically where s_j is tiny. dallocation [B, N] by location; sorted_usage, order and
    before from dnc_memory.allocation_parts. Returns dusage [B, N]. The sort order gets no
    gradient (see dnc_memory.allocation).
    """
    g = dallocation.gather(-1, order)
    terms = g * (1 - sorted_usage) * before
    after = F.pad(terms.flip(-1).cumsum(-1).flip(-1)[..., 1:], (0, 1))
    dsorted = (after / sorted_usage - g * before) * (1 - EPS)
    return torch.zeros_like(dsorted).scatter(-1, order, dsorted)


def write_weighting_grad(
    dwrite: torch.Tensor,
    content: torch.Tensor,
    allocation: torch.Tensor,
    write_gate: torch.Tensor,
    allocation_gate: torch.Tensor,
):
    """w^w = g^w m,  m = g^a a + (1 - g^a) c:

        dm = g^w dw,  dg^w = sum_n dw m,  da = g^a dm,  dc = (1 - g^a) dm,  dg^a = sum_n dm (a - c)

    dwrite, content, allocation [B, N]; gates [B]. Returns (dcontent, dallocation, dwrite_gate,
    dallocation_gate).
    """
    ga = allocation_gate.unsqueeze(-1)
    mix = ga * allocation + (1 - ga) * content
    dmix = write_gate.unsqueeze(-1) * dwrite
    dalloc = ga * dmix
    return dmix - dalloc, dalloc, (dwrite * mix).sum(-1), (dmix * (allocation - content)).sum(-1)


def precedence_grad(dprecedence: torch.Tensor, previous: torch.Tensor, write_weights: torch.Tensor):
    """p = (1 - sum_i w_i) p_prev + w:

        dp_prev = (1 - sum_i w_i) dp,  dw_i = dp_i - sum_j dp_j p_prev_j

    All [B, N]. Returns (dprevious, dwrite_weights).
    """
    kept = 1 - write_weights.sum(-1, keepdim=True)
    return kept * dprecedence, dprecedence - (dprecedence * previous).sum(-1, keepdim=True)


def read_weighting_grad(
    dread: torch.Tensor,
    backward: torch.Tensor,
    content: torch.Tensor,
    forward: torch.Tensor,
    modes: torch.Tensor,
):
    """w^r = pi[1] b + pi[2] c + pi[3] f  (per head):

        db = pi[1] dw,  dc = pi[2] dw,  df = pi[3] dw,  dpi[k] = sum_n dw o (b, c, f)[k]

    dread, backward, content, forward [B, R, N]; modes pi [B, R, 3]. Returns (dbackward,
    dcontent, dforward, dmodes).
    """
    dmodes = torch.stack([(dread * x).sum(-1) for x in (backward, content, forward)], -1)
    scaled = dread.unsqueeze(2) * modes.unsqueeze(-1)  # [B, R, 3, N]
    return scaled[:, :, 0], scaled[:, :, 1], scaled[:, :, 2], dmodes
