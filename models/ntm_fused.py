"""The NTM's step for the fused sequence (models.fused_engine): forward with autograd off, and
its hand-written backward.

Why: at the paper's sizes an NTM step is ~60 tiny tensor ops, and autograd records each one and
replays ~100 more in backward; on a 2-core CPU that bookkeeping, not arithmetic, is the step's
cost. `step_forward` runs the math of `NTM.step` with autograd off and keeps what the backward
needs (`Saved`); `step_backward` takes one step back with the derivatives of
models.ntm_memory_grad. The engine runs them over the sequence (`STEPS`). `NTM.step` stays the
plain reference: tests/test_ntm_fused.py checks outputs and gradients against it and runs
gradcheck on the engine's Function with these steps.

Layout: the heads' linear layer is used with its rows permuted (`head_order`) so that each kind
of head output is one contiguous block and one activation call serves all heads:

    [keys H*M | shift logits H*S | beta, gamma logits H*2 | gate H, erase W*M | add W*M]
                 softmax per head   softplus (gamma + 1)    sigmoid            tanh

With `Layout.seeds` = K it runs K models at once (FusedModel.seeds_forward, used by the batched
seeds of benchmarks/batched.py): the memory operations take the K*B sequences as one batch and
only the linear layers are per seed (batched matmuls).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from models import ntm_memory as mem
from models import ntm_memory_grad as grad
from models.fused_cell import affine, lstm_cell, lstm_cell_grad
from models.fused_engine import LayerGrads, Steps, StepWeights
from models.ntm_memory import NTMState


class Layout(NamedTuple):
    """The sizes the steps are written for: plain numbers, so torch.compile specializes on them."""

    inputs: int  # I
    controller: int  # C
    read_heads: int  # R
    write_heads: int  # W
    width: int  # M
    shifts: int  # S
    lstm: bool
    clip: float
    seeds: int = 1  # K models in one pass: rows seed-major (K x B), weights [K, ...]


class Shifts(NamedTuple):
    """The steps' constants: the shift offsets' gather indices (models.ntm_memory.shift_index)."""

    index: Tensor  # [S, N], for circular_shift
    inverse: Tensor  # [S, N], of the negated offsets, for shift_grad


class Saved(NamedTuple):
    """What step_forward keeps for step_backward, B rows each (H = R + W heads)."""

    state_in: Tensor  # the controller's recurrent input [reads, h_{t-1}] (just reads: feed-forward)
    sig: Tensor  # LSTM gates (i, f, o) [B, 3C] (feed-forward: its pre-activations)
    cand: Tensor  # LSTM candidate g [B, C]
    c: Tensor  # the new controller cell [B, C]
    tanh_c: Tensor  # tanh(c) [B, C]
    h: Tensor  # the new controller output [B, C]
    pre: Tensor  # the heads layer's output before the clamp [B, P]
    raw: Tensor  # ... after it
    keys: Tensor  # [B, H, M]
    shift: Tensor  # shift distributions [B, H, S]
    strength_gamma: Tensor  # softplus of (beta, gamma - 1) [B, H, 2]
    sig_heads: Tensor  # the sigmoid block: gates [B, H], erase [B, W*M]
    add: Tensor  # [B, W, M]
    similarity: Tensor  # cosine similarity K [B, H, N]
    key_norm: Tensor  # [B, H, 1]
    row_norm: Tensor  # [B, 1, N]
    content: Tensor  # content weightings [B, H, N]
    weights_prev: Tensor  # the weightings before the step [B, H, N]
    gated: Tensor  # interpolated [B, H, N]
    shifted: Tensor  # shifted [B, H, N]
    new_weights: Tensor  # sharpened: the step's weightings, reads first [B, H, N]
    memory_prev: Tensor  # the memory the step reads and writes [B, N, M]


class Previous(NamedTuple):
    """What step_backward needs of the state before its step (the rest it saved itself)."""

    c: Tensor  # the controller cell [B, C], for the LSTM's gradient


def head_order(read_heads: int, write_heads: int, width: int, shifts: int) -> torch.Tensor:
    """Permutation of the heads layer's rows, from NTM.head_parameters' per-head layout
    ([key M, beta, gate, shift S, gamma] per head, then [erase M, add M] per write head) to the
    blocked layout of the module docstring."""
    R, W, M, S = read_heads, write_heads, width, shifts
    A = M + S + 3
    base = [h * A for h in range(R)] + [R * A + w * (A + 2 * M) for w in range(W)]
    order = [b + m for b in base for m in range(M)]
    order += [b + M + 2 + j for b in base for j in range(S)]
    order += [b + k for b in base for k in (M, A - 1)]  # beta, gamma
    order += [b + M + 1 for b in base]  # gate
    order += [b + A + m for b in base[R:] for m in range(M)]  # erase
    order += [b + A + M + m for b in base[R:] for m in range(M)]  # add
    return torch.tensor(order)


def step_forward(L: Layout, x_gates: Tensor, state: NTMState, w: StepWeights, shifts: Shifts):
    """One time step with autograd off: the NTM step of models.ntm, in the blocked layout.
    Returns the new state and what step_backward needs."""
    B, R, W, M, S = state.h.shape[0], L.read_heads, L.write_heads, L.width, L.shifts
    H = R + W
    state_in = torch.cat([state.reads.flatten(1), state.h], 1) if L.lstm else state.reads.flatten(1)
    gates, c = affine(L.seeds, state_in, w.state, x_gates), state.c
    if L.lstm:
        sig, cand, c, tanh_c, h = lstm_cell(gates, c, L.controller)
    else:
        sig, cand, tanh_c, h = gates, gates, gates, torch.tanh(gates)  # only h is used
    pre = affine(L.seeds, h, w.interface, w.interface_bias)
    raw = pre.clamp(-L.clip, L.clip)
    o = H * (M + S)
    keys = raw[:, : H * M].view(B, H, M)
    shift = torch.softmax(raw[:, H * M : o].view(B, H, S), -1)
    strength_gamma = F.softplus(raw[:, o : o + 2 * H]).view(B, H, 2)
    sig_heads = torch.sigmoid(raw[:, o + 2 * H : o + 3 * H + W * M])
    gate, erase = sig_heads[:, :H], sig_heads[:, H:].view(B, W, M)
    add = torch.tanh(raw[:, o + 3 * H + W * M :]).view(B, W, M)
    strength, gamma = strength_gamma[..., 0], strength_gamma[..., 1] + 1
    similarity, key_norm, row_norm = mem.cosine_parts(state.memory, keys)
    content = torch.softmax(strength.unsqueeze(-1) * similarity, -1)
    gated = mem.interpolate(content, state.weights, gate)
    shifted = mem.circular_shift(gated, shift, shifts.index)
    weights = mem.sharpen(shifted, gamma)
    reads = mem.read(state.memory, weights[:, :R])
    memory = mem.write(state.memory, weights[:, R:], erase, add)
    # positional, in Saved's order: 22 keywords cost ~3 us a step to match; packed, not a
    # line each, which would make a third of the step a list of names
    # fmt: off
    saved = Saved(
        state_in, sig, cand, c, tanh_c, h, pre, raw, keys, shift, strength_gamma, sig_heads, add,
        similarity, key_norm, row_norm, content, state.weights, gated, shifted, weights,
        state.memory
    )
    # fmt: on
    return NTMState(h=h, c=c, memory=memory, weights=weights, reads=reads), saved


def step_backward(
    L: Layout, carry: NTMState, s: Saved, previous: Previous, w: StepWeights, shifts: Shifts
):
    """The gradients of one step's inputs from those of its outputs.

    carry: the gradients of the step's new state (h and reads including the output layer's).
    Returns those of the state before it, and the gradients of the two linear layers' outputs."""
    B, R, W, M, H = s.h.shape[0], L.read_heads, L.write_heads, L.width, L.read_heads + L.write_heads
    gate, erase = s.sig_heads[:, :H], s.sig_heads[:, H:].view(B, W, M)
    gamma = s.strength_gamma[..., 1] + 1
    keep = mem.kept(s.new_weights[:, R:], erase)  # recomputed: cheaper than keeping [T, B, N, M]
    dmem, dwrite, derase, dadd = grad.write_grad(
        carry.memory, s.memory_prev, s.new_weights[:, R:], erase, s.add, keep
    )
    dmem = torch.baddbmm(dmem, s.new_weights[:, :R].transpose(1, 2), carry.reads)
    dnew = torch.cat([carry.reads @ s.memory_prev.transpose(1, 2), dwrite], 1) + carry.weights
    dshifted, dgamma = grad.sharpen_grad(dnew, s.shifted, gamma, s.new_weights)
    dgated, dshift = grad.shift_grad(dshifted, s.gated, s.shift, shifts.index, shifts.inverse)
    dcontent, dprevious, dgate = grad.interpolate_grad(dgated, s.content, s.weights_prev, gate)
    dmem_c, dkeys, dstrength = grad.content_grad(
        dcontent,
        s.memory_prev,
        s.keys,
        s.strength_gamma[..., 0],
        s.similarity,
        s.key_norm,
        s.row_norm,
        s.content,
    )
    o = H * (M + L.shifts)
    dsoftplus = torch.stack([dstrength, dgamma], -1).flatten(1) * torch.sigmoid(
        s.raw[:, o : o + 2 * H]
    )
    dsig = torch.cat([dgate, derase.flatten(1)], 1) * s.sig_heads * (1 - s.sig_heads)
    dheads = torch.cat(
        [
            dkeys.flatten(1),
            grad.softmax_grad(dshift, s.shift).flatten(1),
            dsoftplus,
            dsig,
            (dadd * (1 - s.add * s.add)).flatten(1),
        ],
        1,
    )
    dheads = dheads * ((s.pre >= -L.clip) & (s.pre <= L.clip))  # clamp passes inside [-clip, clip]
    dh, dc = affine(L.seeds, dheads, w.interface.transpose(-2, -1), carry.h), carry.c
    if L.lstm:
        dgates, dc = lstm_cell_grad(dh, dc, s.sig, s.cand, previous.c, s.tanh_c, L.controller)
    else:
        dgates = dh * (1 - s.h * s.h)
    dstate = affine(L.seeds, dgates, w.state.transpose(-2, -1))
    RM = R * M
    dh_prev = dstate[:, RM:] if L.lstm else torch.zeros_like(dh)
    carry = NTMState(
        h=dh_prev, c=dc, memory=dmem + dmem_c, weights=dprevious, reads=dstate[:, :RM].view(B, R, M)
    )
    return carry, LayerGrads(controller=dgates, interface=dheads)


STEPS = Steps(
    "ntm",
    step_forward,
    step_backward,
    state=NTMState,
    saved=Saved,
    previous=Previous,
    constants=Shifts,
)
