"""The DNC's step for the fused sequence (models.fused_engine): forward with autograd off, and
its hand-written backward.

Why: as for the NTM (models.ntm_fused), a DNC step at the NTM paper's size is ~80 small tensor
ops, and autograd's bookkeeping for them, not their arithmetic, is most of a training step on a
2-core CPU. `step_forward` runs the math of `DNC.step` with autograd off and keeps what the
backward needs (`Saved`); `step_backward` takes one step back with the derivatives of
models.ntm_memory_grad (content lookup, erase/add write), models.dnc_memory_grad (usage,
allocation, read modes) and dnc_memory.links_grad (the temporal links). The engine runs them over
the sequence (`STEPS`). `DNC.step` stays the plain reference: tests/test_dnc_fused.py checks outputs
and gradients against it and runs gradcheck on the engine's Function with these steps.

Layout: the interface layer's rows are permuted (`interface_order`) so that each activation
serves one contiguous block:

    [read keys R*M | write key M | write vector M | strengths R+1 | erase M, free R, g^a, g^w | modes 3R]
     none                                           1 + softplus    sigmoid                     softmax per head

With `Layout.seeds` = K it runs K models at once (FusedModel.seeds_forward): the memory
operations take the K*B sequences as one batch, only the linear layers are per seed (batched
matmuls).
"""  # noqa: E501 - the Layout diagram above is 112 columns wide and reads only whole

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from models import dnc_memory as dm
from models import dnc_memory_grad as dgrad
from models import ntm_memory as mem
from models import ntm_memory_grad as grad
from models.dnc_memory import DNCState
from models.fused_cell import affine, lstm_cell, lstm_cell_grad
from models.fused_engine import LayerGrads, NoConstants, Steps, StepWeights


class Layout(NamedTuple):
    """The sizes the steps are written for: plain numbers, so torch.compile specializes on them."""

    inputs: int  # I
    controller: int  # C
    read_heads: int  # R
    memory: int  # N
    width: int  # M
    clip: float
    seeds: int = 1  # K models in one pass: rows seed-major (K x B), weights [K, ...]


def interface_order(sizes: list[int]) -> torch.Tensor:
    """Permutation of the interface layer's rows from the layout of `sizes`, DNC.interface_split
    (read keys, read strengths, write key, write strength, erase, write vector, free gates,
    allocation gate, write gate, read modes), to the blocked layout of the module docstring."""
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    blocks = [0, 2, 5, 1, 3, 4, 6, 7, 8, 9]  # indices into the original split, in blocked order
    return torch.tensor([starts[b] + j for b in blocks for j in range(sizes[b])])


def vectors(L: Layout, raw):
    """The identity block of the clamped interface raw [B, ...]: read keys [B, R, M], write key
    [B, 1, M], write vector [B, M] (views), and where the activated blocks start."""
    B, R, M = raw.shape[0], L.read_heads, L.width
    o = (R + 2) * M
    return raw[:, : R * M].view(B, R, M), raw[:, R * M : o - M].view(B, 1, M), raw[:, o - M : o], o


def gate_parts(L: Layout, gates):
    """The sigmoid block [B, M + R + 2]: erase [B, M], free gates [B, R], allocation gate [B],
    write gate [B] (views)."""
    M, R = L.width, L.read_heads
    return gates[:, :M], gates[:, M : M + R], gates[:, M + R], gates[:, M + R + 1]


class Saved(NamedTuple):
    """What step_forward keeps for step_backward, B rows each; the trailing fields are the new
    state less h (saved above) and reads, named as DNCState's."""

    state_in: Tensor  # the controller's recurrent input [reads, h_{t-1}]
    sig: Tensor  # LSTM gates (i, f, o) [B, 3C]
    cand: Tensor  # LSTM candidate g [B, C]
    tanh_c: Tensor  # tanh(c) [B, C]
    h: Tensor  # the new controller output [B, C]
    pre: Tensor  # the interface before the clamp [B, P]
    raw: Tensor  # ... after it
    strengths: Tensor  # read and write strengths [B, R + 1]
    gates: Tensor  # the sigmoid block: erase, free gates, g^a, g^w [B, M + R + 2]
    modes: Tensor  # read modes [B, R, 3]
    retention: Tensor  # psi [B, N]
    sorted_usage: Tensor  # allocation_parts' sorted usage, order and exclusive products [B, N]
    order: Tensor
    before: Tensor
    allocation: Tensor  # [B, N]
    similarity_w: Tensor  # the write key's cosine similarity [B, 1, N] and norms
    key_norm_w: Tensor
    row_norm: Tensor  # the memory's row norms before the write [B, 1, N]
    content_w: Tensor  # write content weighting [B, 1, N]
    forward: Tensor  # directional read weightings [B, R, N]
    backward: Tensor
    similarity_r: Tensor  # the read keys' cosine similarity [B, R, N] and norms
    key_norm_r: Tensor
    row_norm_new: Tensor  # the memory's row norms after the write [B, 1, N]
    content_r: Tensor  # read content weightings [B, R, N]
    c: Tensor  # the new state: controller cell [B, C],
    memory: Tensor  # memory [B, N, M],
    usage: Tensor  # usage [B, N],
    link: Tensor  # link matrix [B, N, N],
    precedence: Tensor  # precedence [B, N],
    read_weights: Tensor  # read weightings [B, R, N]
    write_weights: Tensor  # and write weighting [B, N]


class Previous(NamedTuple):
    """What step_backward needs of the state before its step: all of it but h and reads."""

    c: Tensor
    memory: Tensor
    usage: Tensor
    link: Tensor
    precedence: Tensor
    read_weights: Tensor
    write_weights: Tensor


def step_forward(L: Layout, x_gates: Tensor, state: DNCState, w: StepWeights, _: NoConstants):
    """One time step with autograd off: the DNC step of models.dnc, in the blocked layout.
    Returns the new state and what step_backward needs."""
    B, R, M = state.h.shape[0], L.read_heads, L.width
    state_in = torch.cat([state.reads.flatten(1), state.h], 1)
    sig, cand, c, tanh_c, h = lstm_cell(
        affine(L.seeds, state_in, w.state, x_gates), state.c, L.controller
    )
    pre = affine(L.seeds, h, w.interface, w.interface_bias)
    raw = pre.clamp(-L.clip, L.clip)
    read_keys, write_key, add, o = vectors(L, raw)
    strengths = 1 + F.softplus(raw[:, o : o + R + 1])
    gates = torch.sigmoid(raw[:, o + R + 1 : o + 2 * R + 3 + M])
    erase, free, allocation_gate, write_gate = gate_parts(L, gates)
    modes = torch.softmax(raw[:, o + 2 * R + 3 + M :].view(B, R, 3), -1)

    retention = dm.retention(free, state.read_weights)
    usage = dm.usage(state.usage, state.write_weights, retention)
    allocation, sorted_usage, order, before = dm.allocation_parts(usage)
    similarity_w, key_norm_w, row_norm = mem.cosine_parts(state.memory, write_key)
    content_w = torch.softmax(strengths[:, R:].unsqueeze(-1) * similarity_w, -1)
    write_weights = dm.write_weighting(content_w[:, 0], allocation, write_gate, allocation_gate)
    memory = mem.write(
        state.memory, write_weights.unsqueeze(1), erase.unsqueeze(1), add.unsqueeze(1)
    )
    # through the custom Function (autograd is off here) for its vmap rule: addcmul_ has none
    link, forward, backward = dm.temporal_links(
        state.link, state.precedence, write_weights, state.read_weights
    )
    similarity_r, key_norm_r, row_norm_new = mem.cosine_parts(memory, read_keys)
    content_r = torch.softmax(strengths[:, :R].unsqueeze(-1) * similarity_r, -1)
    read_weights = dm.read_weighting(backward, content_r, forward, modes)
    reads = mem.read(memory, read_weights)
    precedence = dm.precedence(state.precedence, write_weights)
    new = DNCState(
        h=h,
        c=c,
        memory=memory,
        usage=usage,
        link=link,
        precedence=precedence,
        read_weights=read_weights,
        write_weights=write_weights,
        reads=reads,
    )
    # positional, in Saved's order: 32 keywords cost ~5 us a step to match; packed, not a
    # line each, which would make a third of the step a list of names
    # fmt: off
    saved = Saved(
        state_in, sig, cand, tanh_c, h, pre, raw, strengths, gates, modes, retention, sorted_usage,
        order, before, allocation, similarity_w, key_norm_w, row_norm, content_w, forward, backward,
        similarity_r, key_norm_r, row_norm_new, content_r, c, memory, usage, link, precedence,
        read_weights, write_weights
    )
    # fmt: on
    return new, saved


def step_backward(
    L: Layout, carry: DNCState, s: Saved, previous: Previous, w: StepWeights, _: NoConstants
):
    """The gradients of one step's inputs from those of its outputs.

    carry: the gradients of the step's new state (h and reads including the output layer's).
    Returns those of the state before it, and the gradients of the two linear layers' outputs."""
    B, R, M = s.h.shape[0], L.read_heads, L.width
    read_keys, write_key, add, o = vectors(L, s.raw)
    erase, free, allocation_gate, write_gate = gate_parts(L, s.gates)
    new_memory, write_weights = s.memory, s.write_weights

    dprecedence_prev, dwrite_p = dgrad.precedence_grad(
        carry.precedence, previous.precedence, write_weights
    )
    dmemory = torch.baddbmm(carry.memory, s.read_weights.transpose(1, 2), carry.reads)
    dread = carry.read_weights + carry.reads @ new_memory.transpose(1, 2)
    dbackward, dcontent_r, dforward, dmodes = dgrad.read_weighting_grad(
        dread, s.backward, s.content_r, s.forward, s.modes
    )
    dmemory_r, dread_keys, dstrength_r = grad.content_grad(
        dcontent_r,
        new_memory,
        read_keys,
        s.strengths[:, :R],
        s.similarity_r,
        s.key_norm_r,
        s.row_norm_new,
        s.content_r,
    )
    dlink_prev, dprecedence_l, dwrite_l, dread_prev = dm.links_grad(
        carry.link,
        dforward,
        dbackward,
        previous.link,
        previous.precedence,
        write_weights,
        previous.read_weights,
        s.link,
    )
    # recomputed: cheaper than keeping [T, B, N, M]
    keep = mem.kept(write_weights.unsqueeze(1), erase.unsqueeze(1))
    dmemory_prev, dwrite_m, derase, dadd = grad.write_grad(
        dmemory + dmemory_r,
        previous.memory,
        write_weights.unsqueeze(1),
        erase.unsqueeze(1),
        add.unsqueeze(1),
        keep,
    )
    dwrite = carry.write_weights + dwrite_p + dwrite_l + dwrite_m[:, 0]
    dcontent_w, dallocation, dwrite_gate, dallocation_gate = dgrad.write_weighting_grad(
        dwrite, s.content_w[:, 0], s.allocation, write_gate, allocation_gate
    )
    dmemory_w, dwrite_key, dstrength_w = grad.content_grad(
        dcontent_w.unsqueeze(1),
        previous.memory,
        write_key,
        s.strengths[:, R:],
        s.similarity_w,
        s.key_norm_w,
        s.row_norm,
        s.content_w,
    )
    dusage = carry.usage + dgrad.allocation_grad(dallocation, s.sorted_usage, s.order, s.before)
    dusage_prev, dwrite_prev, dretention = dgrad.usage_grad(
        dusage, previous.usage, previous.write_weights, s.retention
    )
    dfree, dread_r = dgrad.retention_grad(dretention, free, previous.read_weights)

    dsoftplus = torch.cat([dstrength_r, dstrength_w], 1) * torch.sigmoid(s.raw[:, o : o + R + 1])
    dgates_i = torch.cat(
        [derase.flatten(1), dfree, dallocation_gate.unsqueeze(1), dwrite_gate.unsqueeze(1)], 1
    )
    dinterface = torch.cat(
        [
            dread_keys.flatten(1),
            dwrite_key.flatten(1),
            dadd.flatten(1),
            dsoftplus,
            dgates_i * s.gates * (1 - s.gates),
            grad.softmax_grad(dmodes, s.modes).flatten(1),
        ],
        1,
    )
    # clamp passes inside [-clip, clip]
    dinterface = dinterface * ((s.pre >= -L.clip) & (s.pre <= L.clip))
    dh = affine(L.seeds, dinterface, w.interface.transpose(-2, -1), carry.h)
    dgates, dc = lstm_cell_grad(dh, carry.c, s.sig, s.cand, previous.c, s.tanh_c, L.controller)
    dstate = affine(L.seeds, dgates, w.state.transpose(-2, -1))
    carry = DNCState(
        h=dstate[:, R * M :],
        c=dc,
        memory=dmemory_prev + dmemory_w,
        usage=dusage_prev,
        link=dlink_prev,
        precedence=dprecedence_prev + dprecedence_l,
        read_weights=dread_prev + dread_r,
        write_weights=dwrite_prev,
        reads=dstate[:, : R * M].view(B, R, M),
    )
    return carry, LayerGrads(controller=dgates, interface=dinterface)


STEPS = Steps("dnc", step_forward, step_backward, state=DNCState, saved=Saved, previous=Previous)
