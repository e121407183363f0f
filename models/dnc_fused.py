"""The DNC's whole sequence as one autograd Function with a hand-written backward pass.

Why: as for the NTM (models.ntm_fused), a DNC step at the NTM paper's size is ~80 small tensor
ops, and autograd's bookkeeping for them, not their arithmetic, is most of a training step on a
2-core CPU. The forward pass here runs the math of `DNC.step` with autograd off and keeps what
the backward needs; the backward walks the sequence in reverse with the derivatives of
models.ntm_memory_grad (content lookup, erase/add write) and models.dnc_memory_grad (usage,
allocation, links, read modes), and the weight gradients are summed over all time steps in one matmul each
at the end. `DNC.step` stays the plain reference: tests/test_dnc_fused.py checks outputs and
gradients against it and runs gradcheck on this Function.

Layout: the interface layer's rows are permuted (`interface_order`) so that each activation
serves one contiguous block:

    [read keys R*M | write key M | write vector M | strengths R+1 | erase M, free R, g^a, g^w | modes 3R]
     none                                           1 + softplus    sigmoid                     softmax per head

With `Layout.seeds` = K it runs K models at once (DNC.seeds_forward): the memory operations
take the K*B sequences as one batch, only the linear layers are per seed (batched matmuls).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from models import dnc_memory_grad as dgrad
from models import dnc_memory as dm
from models import ntm_memory as mem
from models import ntm_memory_grad as grad
from models.fused_cell import affine, input_gates, layer_grads, lstm_cell, lstm_cell_grad, stack_steps

STATE = 9  # h, c, reads, memory, usage, link, precedence, read weights, write weights
NEW = 7    # the trailing saved fields of a step: its new c, memory, usage, link, precedence, read and write weights
FIELDS = 32  # tensors step_forward saves per step (see its `saved`)


class Layout(NamedTuple):
    inputs: int          # I
    controller: int      # C
    read_heads: int      # R
    memory: int          # N
    width: int           # M
    clip: float
    seeds: int = 1       # K models in one pass: rows seed-major (K x B), weights [K, ...]


def interface_order(read_heads: int, width: int) -> torch.Tensor:
    """Permutation of the interface layer's rows from DNC.interface_split's layout (read keys,
    read strengths, write key, write strength, erase, write vector, free gates, allocation gate,
    write gate, read modes) to the blocked layout of the module docstring."""
    R, M = read_heads, width
    sizes = [R * M, R, M, 1, M, M, R, 1, 1, 3 * R]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    blocks = [0, 2, 5, 1, 3, 4, 6, 7, 8, 9]           # indices into the original split, in blocked order
    return torch.tensor([starts[b] + j for b in blocks for j in range(sizes[b])])


def initial_state(L: Layout, batch: int, like: torch.Tensor):
    """The all-zero state (DNC.initial_state) as the tuple the fused steps carry."""
    C, R, N, M = L.controller, L.read_heads, L.memory, L.width
    return tuple(like.new_zeros(batch, *shape) for shape in ((C,), (C,), (R, M), (N, M), (N,), (N, N), (N,), (R, N), (N,)))


def vectors(L: Layout, raw):
    """The identity block of the clamped interface raw [B, ...]: read keys [B, R, M], write key
    [B, 1, M], write vector [B, M] (views), and where the activated blocks start."""
    B, R, M = raw.shape[0], L.read_heads, L.width
    o = (R + 2) * M
    return raw[:, : R * M].view(B, R, M), raw[:, R * M: o - M].view(B, 1, M), raw[:, o - M: o], o


def gate_parts(L: Layout, gates):
    """The sigmoid block [B, M + R + 2]: erase [B, M], free gates [B, R], allocation gate [B],
    write gate [B] (views)."""
    M, R = L.width, L.read_heads
    return gates[:, :M], gates[:, M: M + R], gates[:, M + R], gates[:, M + R + 1]


def step_forward(L: Layout, x_gates, state, w_state, w_interface, b_interface):
    """One time step with autograd off: the DNC step of models.dnc, in the blocked layout.
    Returns the new state (as `initial_state`) and the tuple of what step_backward needs."""
    h, c, reads, memory, usage, link, precedence, read_prev, write_prev = state
    B, R, M = h.shape[0], L.read_heads, L.width
    state_in = torch.cat([reads.flatten(1), h], 1)
    sig, cand, c, tanh_c, h = lstm_cell(affine(L.seeds, state_in, w_state, x_gates), c, L.controller)
    pre = affine(L.seeds, h, w_interface, b_interface)
    raw = pre.clamp(-L.clip, L.clip)
    read_keys, write_key, add, o = vectors(L, raw)
    strengths = 1 + F.softplus(raw[:, o: o + R + 1])
    gates = torch.sigmoid(raw[:, o + R + 1: o + 2 * R + 3 + M])
    erase, free, allocation_gate, write_gate = gate_parts(L, gates)
    modes = torch.softmax(raw[:, o + 2 * R + 3 + M:].view(B, R, 3), -1)

    retention = dm.retention(free, read_prev)
    usage = dm.usage(usage, write_prev, retention)
    allocation, sorted_usage, order, before = dm.allocation_parts(usage)
    similarity_w, key_norm_w, row_norm = mem.cosine_parts(memory, write_key)
    content_w = torch.softmax(strengths[:, R:].unsqueeze(-1) * similarity_w, -1)
    write_weights = dm.write_weighting(content_w[:, 0], allocation, write_gate, allocation_gate)
    new_memory = mem.write(memory, write_weights.unsqueeze(1), erase.unsqueeze(1), add.unsqueeze(1))
    # through the custom Function (autograd is off here) for its vmap rule: addcmul_ has none
    link, forward, backward = dm.temporal_links(link, precedence, write_weights, read_prev)
    similarity_r, key_norm_r, row_norm_new = mem.cosine_parts(new_memory, read_keys)
    content_r = torch.softmax(strengths[:, :R].unsqueeze(-1) * similarity_r, -1)
    read_weights = dm.read_weighting(backward, content_r, forward, modes)
    reads = mem.read(new_memory, read_weights)
    precedence = dm.precedence(precedence, write_weights)
    new = (h, c, reads, new_memory, usage, link, precedence, read_weights, write_weights)
    saved = (state_in, sig, cand, tanh_c, h, pre, raw, strengths, gates, modes, retention, sorted_usage, order, before,
             allocation, similarity_w, key_norm_w, row_norm, content_w, forward, backward, similarity_r, key_norm_r,
             row_norm_new, content_r, new[1], *new[3:])   # the new state less h and reads: the NEW fields
    return new, saved


def step_backward(L: Layout, carry, saved, previous, w_state, w_interface):
    """The gradients of one step's inputs from those of its outputs.

    carry: the gradients of the step's new state (as `initial_state`; dh and dreads including
    the output layer's); previous: the state before the step (c, memory, usage, link,
    precedence, read and write weights). Returns the carry of the step's inputs, and (dgates,
    dinterface), the gradients of the two linear layers' outputs, whose weight gradients the
    caller sums."""
    (state_in, sig, cand, tanh_c, h, pre, raw, strengths, gates, modes, retention, sorted_usage, order, before,
     allocation, similarity_w, key_norm_w, row_norm, content_w, forward, backward, similarity_r, key_norm_r,
     row_norm_new, content_r, _, new_memory, _, new_link, _, read_weights, write_weights) = saved
    c_prev, memory, usage_prev, link, precedence, read_prev, write_prev = previous
    dh, dc, dreads, dmemory, dusage, dlink, dprecedence, dread, dwrite = carry
    B, R, M = h.shape[0], L.read_heads, L.width
    read_keys, write_key, add, o = vectors(L, raw)
    erase, free, allocation_gate, write_gate = gate_parts(L, gates)

    dprecedence_prev, dwrite_p = dgrad.precedence_grad(dprecedence, precedence, write_weights)
    dmemory = torch.baddbmm(dmemory, read_weights.transpose(1, 2), dreads)
    dread = dread + dreads @ new_memory.transpose(1, 2)
    dbackward, dcontent_r, dforward, dmodes = dgrad.read_weighting_grad(dread, backward, content_r, forward, modes)
    dmemory_r, dread_keys, dstrength_r = grad.content_grad(dcontent_r, new_memory, read_keys, strengths[:, :R],
                                                           similarity_r, key_norm_r, row_norm_new, content_r)
    dlink_prev, dprecedence_l, dwrite_l, dread_prev = dm.links_grad(dlink, dforward, dbackward, link, precedence,
                                                                    write_weights, read_prev, new_link)
    keep = mem.kept(write_weights.unsqueeze(1), erase.unsqueeze(1))   # recomputed: cheaper than keeping [T, B, N, M]
    dmemory_prev, dwrite_m, derase, dadd = grad.write_grad(dmemory + dmemory_r, memory, write_weights.unsqueeze(1),
                                                           erase.unsqueeze(1), add.unsqueeze(1), keep)
    dwrite = dwrite + dwrite_p + dwrite_l + dwrite_m[:, 0]
    dcontent_w, dallocation, dwrite_gate, dallocation_gate = dgrad.write_weighting_grad(
        dwrite, content_w[:, 0], allocation, write_gate, allocation_gate)
    dmemory_w, dwrite_key, dstrength_w = grad.content_grad(dcontent_w.unsqueeze(1), memory, write_key,
                                                           strengths[:, R:], similarity_w, key_norm_w, row_norm,
                                                           content_w)
    dusage = dusage + dgrad.allocation_grad(dallocation, sorted_usage, order, before)
    dusage_prev, dwrite_prev, dretention = dgrad.usage_grad(dusage, usage_prev, write_prev, retention)
    dfree, dread_r = dgrad.retention_grad(dretention, free, read_prev)

    dsoftplus = torch.cat([dstrength_r, dstrength_w], 1) * torch.sigmoid(raw[:, o: o + R + 1])
    dgates_i = torch.cat([derase.flatten(1), dfree, dallocation_gate.unsqueeze(1), dwrite_gate.unsqueeze(1)], 1)
    dinterface = torch.cat([dread_keys.flatten(1), dwrite_key.flatten(1), dadd.flatten(1), dsoftplus,
                            dgates_i * gates * (1 - gates), grad.softmax_grad(dmodes, modes).flatten(1)], 1)
    dinterface = dinterface * ((pre >= -L.clip) & (pre <= L.clip))      # clamp passes inside [-clip, clip]
    dh = affine(L.seeds, dinterface, w_interface.transpose(-2, -1), dh)
    dgates, dc = lstm_cell_grad(dh, dc, sig, cand, c_prev, tanh_c, L.controller)
    dstate = affine(L.seeds, dgates, w_state.transpose(-2, -1))
    carry = (dstate[:, R * M:], dc, dstate[:, : R * M].view(B, R, M), dmemory_prev + dmemory_w, dusage_prev,
             dlink_prev, dprecedence_prev + dprecedence_l, dread_prev + dread_r, dwrite_prev)
    return carry, (dgates, dinterface)


def forward_chunk(L: Layout, x_gates, state, w_state, w_interface_t, b_interface, save: bool = True):
    """step_forward over the time steps of x_gates [chunk, B, 4C] (the input's share of the
    controller gates) from `state`: (state after the chunk, hs [chunk, B, C], reads [chunk, B,
    R*M], each saved field stacked over the chunk (empty unless `save`)). The unit `Kernels`
    compiles."""
    hs, reads, saved = [], [], []
    for x_t in x_gates.unbind(0):
        state, step_saved = step_forward(L, x_t, state, w_state, w_interface_t, b_interface)
        hs.append(state[0])
        reads.append(state[2].flatten(1))
        if save:
            saved.append(step_saved)
    return state, stack_steps(hs), stack_steps(reads), tuple(stack_steps(field) for field in zip(*saved))


def backward_chunk(L: Layout, carry, saved, before, dhs, dreads, w_state, w_interface_t):
    """step_backward over a chunk in reverse. saved: the chunk's stacked fields; before: the
    state before the chunk (c, memory, usage, link, precedence, read and write weights); dhs
    [chunk, B, C], dreads [chunk, B, R*M]: the output layer's gradients. Returns (carry before
    the chunk, dgates and dinterface [chunk * B, ...])."""
    steps = list(zip(*(field.unbind(0) for field in saved)))
    dgates, dinterface = [], []
    for k in reversed(range(len(steps))):
        dh, dc, dr, *rest = carry
        previous = steps[k - 1][-NEW:] if k else before
        carry, (dg, di) = step_backward(L, (dh + dhs[k], dc, dr + dreads[k].view(dr.shape), *rest), steps[k],
                                        previous, w_state, w_interface_t)
        dgates.append(dg)
        dinterface.append(di)
    return carry, torch.cat(dgates[::-1]), torch.cat(dinterface[::-1])


class Kernels(NamedTuple):
    """The chunk functions Sequence runs, and the time steps per chunk: 1 eager, where a step's
    saved fields are then kept as views, with no copy into stacked tensors (at batch 16 the
    DNC's stacked link matrices alone cost 14% of a profiled training step).
    DNC.compile_step swaps in torch.compile'd ones with a fixed chunk."""
    forward: Callable = forward_chunk
    backward: Callable = backward_chunk
    chunk: int = 1


def run(L: Layout, inputs, w_ctrl, b_ctrl, w_interface, b_interface, save: bool, kernels: Kernels = Kernels()):
    """The forward pass over inputs [T, B, I] (T a multiple of the kernels' chunk) from the
    all-zero state: (controller outputs [T, B, C], read vectors [T, B, R*M], and, if `save`, the
    FIELDS saved fields of step_forward for each chunk in turn, each stacked over its steps)."""
    w_ctrl_t, w_interface_t = w_ctrl.transpose(-2, -1), w_interface.transpose(-2, -1)
    x_gates = input_gates(L.seeds, inputs, w_ctrl_t[..., : L.inputs, :], b_ctrl)
    if L.seeds > 1:
        b_interface = b_interface.unsqueeze(1)
    state, parts = initial_state(L, inputs.shape[1], inputs), []
    for x_chunk in x_gates.split(kernels.chunk):
        state, *outputs = kernels.forward(L, x_chunk, state, w_ctrl_t[..., L.inputs:, :], w_interface_t, b_interface,
                                          save)
        parts.append(outputs)
    hs, reads = (torch.cat(outputs) if len(parts) > 1 else outputs[0] for outputs in list(zip(*parts))[:2])
    return (hs, reads, *(field for part in parts for field in part[2]))   # saved fields chunk by chunk: no copy


class Sequence(torch.autograd.Function):
    """(layout, kernels, inputs, controller weight and bias, interface weight and bias in
    interface_order) -> (hs, reads, *saved)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(L, kernels, inputs, w_ctrl, b_ctrl, w_interface, b_interface):
        return run(L, inputs, w_ctrl, b_ctrl, w_interface, b_interface, True, kernels)

    @staticmethod
    def setup_context(ctx, inputs, output):
        L, kernels, x, w_ctrl, _, w_interface, _ = inputs
        ctx.layout, ctx.kernels = L, kernels
        ctx.mark_non_differentiable(*output[2:])
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, w_ctrl, w_interface, *output)

    @staticmethod
    def backward(ctx, dhs, dreads, *_):
        L, kernels = ctx.layout, ctx.kernels
        x, w_ctrl, w_interface, hs, reads, *saved = ctx.saved_tensors
        B = x.shape[1]
        dhs = torch.zeros_like(hs) if dhs is None else dhs
        dreads = torch.zeros_like(reads) if dreads is None else dreads
        w_state, w_interface_t = w_ctrl.transpose(-2, -1)[..., L.inputs:, :], w_interface.transpose(-2, -1)
        initial = initial_state(L, B, hs)
        carry, chunk, dgates, dinterface = initial, kernels.chunk, [], []
        chunks = [saved[i: i + FIELDS] for i in range(0, len(saved), FIELDS)]
        for n in reversed(range(len(chunks))):
            start = n * chunk
            before = tuple(field[-1] for field in chunks[n - 1][-NEW:]) if n else initial[1: 2] + initial[3:]
            carry, dg, di = kernels.backward(L, carry, chunks[n], before, dhs[start: start + chunk],
                                             dreads[start: start + chunk], w_state, w_interface_t)
            dgates.append(dg)
            dinterface.append(di)
        dgates, dinterface = torch.cat(dgates[::-1]), torch.cat(dinterface[::-1])   # [T * B, ...], in time order
        state_in = torch.cat([fields[0] for fields in chunks])
        dx, dw_ctrl, db_ctrl, dw_interface, db_interface = layer_grads(L.seeds, x, state_in, hs, dgates, dinterface, w_ctrl,
                                                                   ctx.needs_input_grad[2])
        return None, None, dx, dw_ctrl, db_ctrl, dw_interface, db_interface
