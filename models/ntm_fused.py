"""The NTM's whole sequence as one autograd Function with a hand-written backward pass.

Why: at the paper's sizes an NTM step is ~60 tiny tensor ops, and autograd records each one and
replays ~100 more in backward; on a 2-core CPU that bookkeeping, not arithmetic, is the step's
cost. Here the forward pass runs the same math with autograd off and keeps what the backward
needs; the backward walks the sequence in reverse with the derivatives of models.ntm_memory_grad,
and the weight gradients are summed over all time steps in one matmul each at the end.
`NTM.step` stays as the plain reference: tests/test_ntm_fused.py checks outputs and gradients
against it and runs gradcheck on this Function.

Layout: the heads' linear layer is used with its rows permuted (`head_order`) so that each kind
of head output is one contiguous block and one activation call serves all heads:

    [keys H*M | shift logits H*S | beta, gamma logits H*2 | gate H, erase W*M | add W*M]
                 softmax per head   softplus (gamma + 1)    sigmoid            tanh

With `Layout.seeds` = K it runs K models at once (NTM.seeds_forward, used by the batched seeds
of benchmarks/batched.py): the memory operations take the K*B sequences as one batch and only
the linear layers are per seed (batched matmuls). The Function also follows torch.func's rules
(setup_context, every saved intermediate an output, generate_vmap_rule), so vmap works too.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from models import ntm_memory as mem
from models import ntm_memory_grad as grad
from models.fused_cell import affine, input_gates, layer_grads, lstm_cell, lstm_cell_grad, stack_steps


FIELDS = 22  # tensors step_forward saves per step (see its `saved`)


class Layout(NamedTuple):
    inputs: int          # I
    controller: int      # C
    read_heads: int      # R
    write_heads: int     # W
    width: int           # M
    shifts: int          # S
    lstm: bool
    clip: float
    seeds: int = 1       # K models in one pass: rows seed-major (K x B), weights [K, ...]


def head_order(read_heads: int, write_heads: int, width: int, shifts: int) -> torch.Tensor:
    """Permutation of the heads layer's rows, from NTM.head_parameters' per-head layout
    ([key M, beta, gate, shift S, gamma] per head, then [erase M, add M] per write head) to the
    blocked layout of the module docstring."""
    R, W, M, S = read_heads, write_heads, width, shifts
    A = M + S + 3
    base = [h * A for h in range(R)] + [R * A + w * (A + 2 * M) for w in range(W)]
    order = [b + m for b in base for m in range(M)]
    order += [b + M + 2 + j for b in base for j in range(S)]
    order += [b + k for b in base for k in (M, A - 1)]                      # beta, gamma
    order += [b + M + 1 for b in base]                                      # gate
    order += [b + A + m for b in base[R:] for m in range(M)]               # erase
    order += [b + A + M + m for b in base[R:] for m in range(M)]           # add
    return torch.tensor(order)


def step_forward(L: Layout, x_gates, h, c, reads, memory, weights, w_state, w_heads, b_heads, index):
    """One time step with autograd off: the NTM step of models.ntm, in the blocked layout.
    Returns (h, c, reads, memory, weights) and the tuple of what step_backward needs."""
    B, R, W, M, S = h.shape[0], L.read_heads, L.write_heads, L.width, L.shifts
    H = R + W
    state_in = torch.cat([reads.flatten(1), h], 1) if L.lstm else reads.flatten(1)
    gates = affine(L.seeds, state_in, w_state, x_gates)
    if L.lstm:
        sig, cand, c, tanh_c, h = lstm_cell(gates, c, L.controller)
    else:
        sig, cand, tanh_c, h = gates, gates, gates, torch.tanh(gates)      # only h is used
    pre = affine(L.seeds, h, w_heads, b_heads)
    raw = pre.clamp(-L.clip, L.clip)
    o = H * (M + S)
    keys = raw[:, : H * M].view(B, H, M)
    shift = torch.softmax(raw[:, H * M: o].view(B, H, S), -1)
    strength_gamma = F.softplus(raw[:, o: o + 2 * H]).view(B, H, 2)
    sig_heads = torch.sigmoid(raw[:, o + 2 * H: o + 3 * H + W * M])
    gate, erase = sig_heads[:, :H], sig_heads[:, H:].view(B, W, M)
    add = torch.tanh(raw[:, o + 3 * H + W * M:]).view(B, W, M)
    strength, gamma = strength_gamma[..., 0], strength_gamma[..., 1] + 1
    similarity, key_norm, row_norm = mem.cosine_parts(memory, keys)
    content = torch.softmax(strength.unsqueeze(-1) * similarity, -1)
    gated = mem.interpolate(content, weights, gate)
    shifted = mem.circular_shift(gated, shift, index)
    new_weights = mem.sharpen(shifted, gamma)
    new_reads = mem.read(memory, new_weights[:, :R])
    new_memory = mem.write(memory, new_weights[:, R:], erase, add)
    saved = (state_in, sig, cand, c, tanh_c, h, pre, raw, keys, shift, strength_gamma, sig_heads, add, similarity,
             key_norm, row_norm, content, weights, gated, shifted, new_weights, memory)
    return (h, c, new_reads, new_memory, new_weights), saved


def step_backward(L: Layout, carry, saved, c_prev, w_state, w_heads, index, inverse):
    """The gradients of one step's inputs from those of its outputs.

    carry: (dh, dc, dreads, dmemory, dweights) of the step's outputs (dh and dreads including
    the output layer's). Returns the carry of the step's inputs, and (dgates, dheads), the
    gradients of the two linear layers' outputs, whose weight gradients the caller sums."""
    (state_in, sig, cand, c, tanh_c, h, pre, raw, keys, shift, strength_gamma, sig_heads, add, similarity,
     key_norm, row_norm, content, weights, gated, shifted, new_weights, memory) = saved
    dh, dc, dreads, dmemory, dweights = carry
    B, R, W, M, H = h.shape[0], L.read_heads, L.write_heads, L.width, L.read_heads + L.write_heads
    gate, erase = sig_heads[:, :H], sig_heads[:, H:].view(B, W, M)
    gamma = strength_gamma[..., 1] + 1
    keep = mem.kept(new_weights[:, R:], erase)            # recomputed: cheaper than keeping [T, B, N, M]
    dmem, dwrite, derase, dadd = grad.write_grad(dmemory, memory, new_weights[:, R:], erase, add, keep)
    dmem = torch.baddbmm(dmem, new_weights[:, :R].transpose(1, 2), dreads)
    dnew = torch.cat([dreads @ memory.transpose(1, 2), dwrite], 1) + dweights
    dshifted, dgamma = grad.sharpen_grad(dnew, shifted, gamma, new_weights)
    dgated, dshift = grad.shift_grad(dshifted, gated, shift, index, inverse)
    dcontent, dprevious, dgate = grad.interpolate_grad(dgated, content, weights, gate)
    dmem_c, dkeys, dstrength = grad.content_grad(dcontent, memory, keys, strength_gamma[..., 0], similarity,
                                                 key_norm, row_norm, content)
    o = H * (M + L.shifts)
    dsoftplus = torch.stack([dstrength, dgamma], -1).flatten(1) * torch.sigmoid(raw[:, o: o + 2 * H])
    dsig = torch.cat([dgate, derase.flatten(1)], 1) * sig_heads * (1 - sig_heads)
    dheads = torch.cat([dkeys.flatten(1), grad.softmax_grad(dshift, shift).flatten(1), dsoftplus, dsig,
                        (dadd * (1 - add * add)).flatten(1)], 1)
    dheads = dheads * ((pre >= -L.clip) & (pre <= L.clip))                 # clamp passes inside [-clip, clip]
    dh = affine(L.seeds, dheads, w_heads.transpose(-2, -1), dh)
    if L.lstm:
        dgates, dc = lstm_cell_grad(dh, dc, sig, cand, c_prev, tanh_c, L.controller)
    else:
        dgates = dh * (1 - h * h)
    dstate = affine(L.seeds, dgates, w_state.transpose(-2, -1))
    RM = R * M
    dh_prev = dstate[:, RM:] if L.lstm else torch.zeros_like(dh)
    return (dh_prev, dc, dstate[:, :RM].view(B, R, M), dmem + dmem_c, dprevious), (dgates, dheads)


def forward_chunk(L: Layout, x_gates, state, w_state, w_heads_t, b_heads, index, save: bool = True):
    """step_forward over the time steps of x_gates [chunk, B, 4C or C] (the input's share of the
    controller gates) from `state`: (state after the chunk, hs [chunk, B, C], reads [chunk, B, R*M],
    each saved field stacked over the chunk (empty unless `save`)). The unit `Kernels` compiles."""
    hs, reads, saved = [], [], []
    for x_t in x_gates.unbind(0):
        state, step_saved = step_forward(L, x_t, *state, w_state, w_heads_t, b_heads, index)
        hs.append(state[0])
        reads.append(state[2].flatten(1))
        if save:
            saved.append(step_saved)
    return state, stack_steps(hs), stack_steps(reads), tuple(stack_steps(field) for field in zip(*saved))


def backward_chunk(L: Layout, carry, saved, c_before, dhs, dreads, w_state, w_heads_t, index, inverse):
    """step_backward over a chunk in reverse. saved: the chunk's stacked fields; c_before: the
    controller cell before the chunk; dhs [chunk, B, C], dreads [chunk, B, R*M]: the output
    layer's gradients. Returns (carry before the chunk, dgates and dheads [chunk * B, ...])."""
    steps = list(zip(*(field.unbind(0) for field in saved)))
    dgates, dheads = [], []
    for k in reversed(range(len(steps))):
        dh, dc, dr, dm, dw = carry
        c_prev = steps[k - 1][3] if k else c_before
        carry, (dg, dhd) = step_backward(L, (dh + dhs[k], dc, dr + dreads[k].view(dr.shape), dm, dw), steps[k],
                                         c_prev, w_state, w_heads_t, index, inverse)
        dgates.append(dg)
        dheads.append(dhd)
    return carry, torch.cat(dgates[::-1]), torch.cat(dheads[::-1])


class Kernels(NamedTuple):
    """The chunk functions Sequence runs, and the time steps per chunk: 1 eager, where a step's
    saved fields are then kept as views, with no copy into stacked tensors (at batch 16 the
    DNC's stacked link matrices alone cost 14% of a profiled training step).
    NTM.compile_step swaps in torch.compile'd ones with a fixed chunk."""
    forward: Callable = forward_chunk
    backward: Callable = backward_chunk
    chunk: int = 1


def run(L: Layout, inputs, h0, c0, reads0, memory0, weights0, w_ctrl, b_ctrl, w_heads, b_heads, index, save: bool,
        kernels: Kernels = Kernels()):
    """The forward pass over inputs [T, B, I] (T a multiple of the kernels' chunk): (controller
    outputs [T, B, C], read vectors [T, B, R*M], and, if `save`, the FIELDS saved fields of
    step_forward for each chunk in turn, each stacked over the chunk's steps)."""
    w_ctrl_t, w_heads_t = w_ctrl.transpose(-2, -1), w_heads.transpose(-2, -1)
    w_state = w_ctrl_t[..., L.inputs:, :]
    x_gates = input_gates(L.seeds, inputs, w_ctrl_t[..., : L.inputs, :], b_ctrl)
    if L.seeds > 1:
        b_heads = b_heads.unsqueeze(1)
    state, parts = (h0, c0, reads0, memory0, weights0), []
    for x_chunk in x_gates.split(kernels.chunk):
        state, *outputs = kernels.forward(L, x_chunk, state, w_state, w_heads_t, b_heads, index, save)
        parts.append(outputs)
    hs, reads = (torch.cat(outputs) if len(parts) > 1 else outputs[0] for outputs in list(zip(*parts))[:2])
    return (hs, reads, *(field for part in parts for field in part[2]))   # saved fields chunk by chunk: no copy


class Sequence(torch.autograd.Function):
    """(layout, kernels, inputs, h0, c0, reads0, memory0, weights0, controller weight and bias,
    heads weight and bias in head_order, shift index, its inverse) -> (hs, reads, *saved)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(L, kernels, inputs, h0, c0, reads0, memory0, weights0, w_ctrl, b_ctrl, w_heads, b_heads, index,
                inverse):
        return run(L, inputs, h0, c0, reads0, memory0, weights0, w_ctrl, b_ctrl, w_heads, b_heads, index, True,
                   kernels)

    @staticmethod
    def setup_context(ctx, inputs, output):
        L, kernels, x, _, c0, _, memory0, weights0, w_ctrl, _, w_heads, _, index, inverse = inputs
        ctx.layout, ctx.kernels = L, kernels
        ctx.mark_non_differentiable(*output[2:])
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, c0, memory0, weights0, w_ctrl, w_heads, index, inverse, *output)

    @staticmethod
    def backward(ctx, dhs, dreads, *_):
        L, kernels = ctx.layout, ctx.kernels
        x, c0, memory0, weights0, w_ctrl, w_heads, index, inverse, hs, reads, *saved = ctx.saved_tensors
        B = x.shape[1]
        dhs = torch.zeros_like(hs) if dhs is None else dhs
        dreads = torch.zeros_like(reads) if dreads is None else dreads
        w_state, w_heads_t = w_ctrl.transpose(-2, -1)[..., L.inputs:, :], w_heads.transpose(-2, -1)
        carry = (hs.new_zeros(B, L.controller), c0.new_zeros(B, L.controller), x.new_zeros(B, L.read_heads, L.width),
                 memory0.new_zeros(B, *memory0.shape[1:]), weights0.new_zeros(B, *weights0.shape[1:]))
        chunk, dgates, dheads = kernels.chunk, [], []
        chunks = [saved[i: i + FIELDS] for i in range(0, len(saved), FIELDS)]
        for n in reversed(range(len(chunks))):
            start = n * chunk
            c_before = chunks[n - 1][3][-1] if n else c0
            carry, dg, dhd = kernels.backward(L, carry, chunks[n], c_before, dhs[start: start + chunk],
                                              dreads[start: start + chunk], w_state, w_heads_t, index, inverse)
            dgates.append(dg)
            dheads.append(dhd)
        dgates, dheads = torch.cat(dgates[::-1]), torch.cat(dheads[::-1])   # [T * B, ...], in time order
        state_in = torch.cat([fields[0] for fields in chunks])
        dx, dw_ctrl, db_ctrl, dw_heads, db_heads = layer_grads(L.seeds, x, state_in, hs, dgates, dheads, w_ctrl,
                                                                   ctx.needs_input_grad[2])
        return (None, None, dx, *carry, dw_ctrl, db_ctrl, dw_heads, db_heads, None, None)
