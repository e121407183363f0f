"""The NTM's whole sequence as a native CPU kernel (numba): the forward over T steps and the
backward over them in reverse, each one compiled call, for the math of NTM.step (models.ntm on
models.ntm_memory, the reference it is tested against).

Why: in torch an NTM step is ~60 tensor ops forward and ~100 back, each a few microseconds of
dispatch on a tiny tensor; at the paper's sizes that overhead, not arithmetic, was most of a
training iteration (a torch path with a hand-derived backward reached 0.2x an LSTM of 256 units).
Here a step is plain loops over the batch, heads, locations and word width, and the only library
calls are the controller's and the heads layer's matrix products (np.dot on contiguous 2-D arrays:
BLAS).

What stays in torch, around the kernel (NTMSequence): the inputs' share of the controller for
the whole sequence at once before it (fused_cell.input_gates), and after the backward the two
linear layers' weight gradients summed over every step from the gradients of their outputs
(fused_cell.layer_grads), one matmul each.

Layout inside the kernel (the wrapper converts; the math is NTM.step's, equation by equation):
- the memory is kept transposed, [B, M, N] (a word is a column), so that every memory loop runs
  over the N locations, the contiguous last axis, as the weightings [B, H, N] do: the cosine
  dot products, the read, the erase/add write and all their gradients are then N-long
  element-wise or reduction loops the compiler vectorizes;
- the heads layer's rows are in head_order's blocks,
      [keys H*M | shift logits H*S | (beta, gamma) per head H*2 | gate H, erase W*M | add W*M];
- K seeds (Layout.seeds) run as one batch of B = K * batch rows, seed-major; only the two
  matrix products are per seed (weights [K, ...]).

What the backward reads (`save`): per step the controller's recurrent input, its gates and
cell, the heads layer's output before and after its activations, the weightings before and
after the step and the addressing's parts (similarity, norms, content, gated, shifted). The
memory, B x 10 KiB a step at the paper's size, is kept only every few steps (checkpoint_steps):
the backward recomputes the memories in between, a segment at a time, with the forward's own
write (so bit for bit the same) into a buffer that stays in cache. Cheap factors are recomputed
too (the write's keep = prod(1 - w e)). Without `save` (evaluation, no grad) the per-step arrays
hold one step of scratch and the state alternates between two slots: nothing per step is kept.

Speed (the paper's copy configuration, float32, one thread, a training iteration with the
output layer, loss and Adam, against torch.nn.LSTM(9, 256), in alternating rounds on the 2-core
VM): ~1.33x the reference's sequences per second at batch 16, ~1.7x at batch 1; the fused torch
path runs at 0.17x and 0.11x there. The kernel's time at batch 16: the memory operations about
half, BLAS a fifth, the LSTM cell a tenth.

numba compiles on first use (float32's forward and backward in two children at once,
fused_model.kernels_on_disk: ~18 s on two cores, 33 s of CPU; float64's, for the tests, ~30 s
where first used) and caches the machine code under models/__pycache__ (cache=True), where a
later process loads it in under a second.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from numba import njit, types
from numba.extending import overload

from ntm_bench.models.fused_cell import input_gates, layer_grads, weight_grads
from ntm_bench.models.fused_model import Operands, flatten, kernels_on_disk
from ntm_bench.models.ntm_memory import EPS, NTMState


class Layout(NamedTuple):
    """The sizes the kernel is called with (NTM.layout; `seeds` K for the K-seed pass)."""

    inputs: int  # I
    controller: int  # C
    read_heads: int  # R
    write_heads: int  # W
    width: int  # M
    shifts: int  # S
    lstm: bool
    clip: float
    layers: int = (
        1  # L: the LSTM controller's layers (each layer above the first reads the one below)
    )
    seeds: int = 1  # K models in one pass: rows seed-major (K x B), weights [K, ...]


class NTMWeights(NamedTuple):
    """The NTM's linear layers as the kernel takes them ([K, ...] each with K seeds)."""

    controller: torch.Tensor  # [G, I + R*M + C]: the first controller layer, G = 4C or C
    controller_bias: torch.Tensor  # [G]
    interface: torch.Tensor  # [P, C]: the heads layer, rows in head_order
    interface_bias: torch.Tensor  # [P]
    upper: torch.Tensor  # [L - 1, 4C, 2C]: the controller's layers above the first ([0, ...]: none)
    upper_bias: torch.Tensor  # [L - 1, 4C]


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


# Reassociation lets the compiler vectorize the sums (dot products, softmax denominators): their
# rounding differs from a left-to-right sum in the last bits. No nnan/ninf: a diverging run must
# still produce its inf and nan for the trainer to see.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
TINY = 1e-30  # the norms' floor in the cosine's gradient
SOFTPLUS_THRESHOLD = 20.0  # torch's softplus is the identity above it


def jit(function):
    """A kernel function: compiled on first call, cached on disk; the numpy error model (a
    division by zero gives inf or nan, as torch's; python's would branch to raise, and a loop
    that may branch out is not vectorized)."""
    return njit(cache=True, fastmath=FASTMATH, error_model="numpy")(function)


def loops(function):
    """The time loops and what they call: as `jit`, without numba's reference counting (NRT).
    They allocate nothing, and each view they take (a row of the tape, one sequence's memory)
    would otherwise cost an atomic increment and decrement: 5% of the kernel's time."""
    return njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)(function)


# the elementary functions: no fastmath (see below), said explicitly: a function that leaves a
# flag unset takes its caller's (numba's ConfigStack), as `loops`' callees would its _nrt
STRICT = {"error_model": "numpy", "fastmath": {"contract"}}


# -- elementary functions the loops can vectorize ------------------------------------------------
# numba calls libm's exp, log, tanh and pow one element at a time (without Intel's SVML there is
# no vector math library to call), 4-30 ns each: at the paper's sizes that was half the kernel's
# time. These are plain arithmetic on the numbers' bits, which LLVM inlines and vectorizes
# (0.3-1.5 ns an element), accurate to a few units in the last place; inf, -inf and nan give
# what libm gives. Each has a float64 and a float32 body (numba picks by the argument's type:
# `overload`), and is compiled without fastmath, whose reassociation would undo the order of
# operations their range reductions rely on; the flags stay per instruction when LLVM inlines
# one into a fastmath loop. tanh_ and sigmoid_ are inlined by numba itself (LLVM finds tanh too
# big, and a loop that calls a function is not vectorized): they take their caller's fastmath,
# harmless for them, and call exp_, which stays strict.

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # ln 2 = LN2_HI + LN2_LO; n * LN2_HI is exact for |n| < 2^20
LN2_LO = 1.90821492927058770002e-10
SQRT2 = 1.4142135623730951
INF = np.inf
F = np.float32  # float32 constants: a float64 literal would promote float32 arithmetic to float64
LOG2E_F, SQRT2_F, INF_F = F(LOG2E), F(SQRT2), F(np.inf)
LN2_HI_F, LN2_LO_F = F(0.693359375), F(-2.12194440e-4)  # n * LN2_HI_F exact for |n| < 2^15


def exp_(x):
    """e^x: x = n ln2 + r with |r| <= ln2 / 2 (Cody and Waite), e^r by its Taylor series (to
    r^13 in float64, r^7 in float32: truncation below half a unit in the last place), 2^n
    written into the exponent bits of two factors (2^n alone overflows the bits at the top of
    the range and underflows them into subnormals at the bottom)."""
    return np.exp(x)


def log_(x):
    """ln x: x = 2^e m with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(f), f = (m - 1) / (m + 1),
    |f| < 0.172, by its series (to f^21 in float64, f^9 in float32)."""
    return np.log(x)


def tanh_(x):
    """tanh x = sign(x) (1 - t) / (1 + t), t = e^(-2|x|); below |x| = 1/8, where 1 - t
    cancels, its Taylor series (to x^17 in float64, x^9 in float32)."""
    return np.tanh(x)


def sigmoid_(x):
    """1 / (1 + e^-x)."""
    return 1 / (1 + np.exp(-x))


def exp64(x):
    x = np.float64(x)
    y = x if x > -750.0 else -750.0  # e^-750 is 0 and e^710 inf in float64; nan -> -750
    y = y if y < 710.0 else 710.0
    n = np.floor(y * LOG2E + 0.5)
    r = (y - n * LN2_HI) - n * LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    k = np.int64(n)
    half = k >> 1
    low = np.int64((half + 1023) << 52).view(np.float64)  # 2^half
    high = np.int64((k - half + 1023) << 52).view(np.float64)  # 2^(n - half)
    e = p * low * high
    return e if x == x else x


def exp32(x):
    y = x if x > F(-104.0) else F(-104.0)  # e^-104 is 0 and e^89 inf in float32
    y = y if y < F(89.0) else F(89.0)
    n = np.floor(y * LOG2E_F + F(0.5))
    r = (y - n * LN2_HI_F) - n * LN2_LO_F
    p = F(1.0 / 5040.0)
    p = p * r + F(1.0 / 720.0)
    p = p * r + F(1.0 / 120.0)
    p = p * r + F(1.0 / 24.0)
    p = p * r + F(1.0 / 6.0)
    p = p * r + F(0.5)
    p = p * r + F(1.0)
    p = p * r + F(1.0)
    k = np.int32(n)
    half = k >> 1
    low = np.int32((half + 127) << 23).view(np.float32)
    high = np.int32((k - half + 127) << 23).view(np.float32)
    e = p * low * high
    return e if x == x else x


def log64(x):
    x = np.float64(x)
    tiny = x < 2.2250738585072014e-308  # a subnormal: scaled by 2^54 first
    y = x * (18014398509481984.0 if tiny else 1.0)
    bits = np.float64(y).view(np.int64)
    e = (bits >> 52) - 1023 - (54 if tiny else 0)
    m = np.int64((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000).view(np.float64)  # in [1, 2)
    big = m > SQRT2
    m = m * (0.5 if big else 1.0)
    e = e + np.int64(big)
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    p = 1.0 / 21.0
    p = p * f2 + 1.0 / 19.0
    p = p * f2 + 1.0 / 17.0
    p = p * f2 + 1.0 / 15.0
    p = p * f2 + 1.0 / 13.0
    p = p * f2 + 1.0 / 11.0
    p = p * f2 + 1.0 / 9.0
    p = p * f2 + 1.0 / 7.0
    p = p * f2 + 1.0 / 5.0
    p = p * f2 + 1.0 / 3.0
    p = p * f2 + 1.0
    ef = np.float64(e)
    r = ef * LN2_HI + (2.0 * f * p + ef * LN2_LO)
    special = -INF if x == 0.0 else np.nan
    r = r if x > 0.0 else special
    return r if x < INF else x


def log32(x):
    tiny = x < F(1.17549435e-38)  # a subnormal: scaled by 2^25 first
    y = x * (F(33554432.0) if tiny else F(1.0))
    bits = np.float32(y).view(np.int32)
    e = (bits >> 23) - 127 - (25 if tiny else 0)
    m = np.int32((bits & 0x7FFFFF) | 0x3F800000).view(np.float32)  # in [1, 2)
    big = m > SQRT2_F
    m = m * (F(0.5) if big else F(1.0))
    e = e + np.int64(big)
    f = (m - F(1.0)) / (m + F(1.0))
    f2 = f * f
    p = F(1.0 / 9.0)
    p = p * f2 + F(1.0 / 7.0)
    p = p * f2 + F(1.0 / 5.0)
    p = p * f2 + F(1.0 / 3.0)
    p = p * f2 + F(1.0)
    ef = np.float32(e)
    r = ef * LN2_HI_F + (F(2.0) * f * p + ef * LN2_LO_F)
    special = -INF_F if x == F(0.0) else F(np.nan)
    r = r if x > F(0.0) else special
    return r if x < INF_F else x


def tanh64(x):
    x = np.float64(x)
    a = abs(x)
    t = exp_(-2.0 * a)
    far = math.copysign((1.0 - t) / (1.0 + t), x)
    x = math.copysign(min(a, 0.125), x)  # near's argument, finite (min and copysign: no branch)
    x2 = x * x
    p = 6404582.0 / 10854718875.0
    p = p * x2 - 929569.0 / 638512875.0
    p = p * x2 + 21844.0 / 6081075.0
    p = p * x2 - 1382.0 / 155925.0
    p = p * x2 + 62.0 / 2835.0
    p = p * x2 - 17.0 / 315.0
    p = p * x2 + 2.0 / 15.0
    p = p * x2 - 1.0 / 3.0
    near = x + x * x2 * p
    return far + np.float64(a < 0.125) * (near - far)  # a select (numba inlines no branch well)


def tanh32(x):
    a = abs(x)
    t = exp_(F(-2.0) * a)
    far = math.copysign((F(1.0) - t) / (F(1.0) + t), x)
    x = math.copysign(min(a, F(0.125)), x)
    x2 = x * x
    p = F(62.0 / 2835.0)
    p = p * x2 - F(17.0 / 315.0)
    p = p * x2 + F(2.0 / 15.0)
    p = p * x2 - F(1.0 / 3.0)
    near = x + x * x2 * p
    return far + np.float32(a < F(0.125)) * (near - far)


def sigmoid64(x):
    return 1.0 / (1.0 + exp_(-np.float64(x)))


def sigmoid32(x):
    return F(1.0) / (F(1.0) + exp_(-x))


def by_type(function, float64, float32, **options):
    """`function` in jitted code: `float32` for a float32 argument, else `float64`."""

    @overload(function, jit_options=STRICT, **options)
    def pick(x):
        return float32 if x == types.float32 else float64


by_type(exp_, exp64, exp32)
by_type(log_, log64, log32)
by_type(tanh_, tanh64, tanh32, inline="always")
by_type(sigmoid_, sigmoid64, sigmoid32, inline="always")


# -- the two linear layers ------------------------------------------------------------------------


@njit(cache=True, _nrt=True)
def seeded_dot(x, w, out):
    """out = x @ w[k] for the rows of seed k: x [K*B, n] rows seed-major, w [K, n, m] (BLAS;
    with reference counting: numba's np.dot(a, b, out) returns `out`)."""
    K = w.shape[0]
    rows = x.shape[0] // K
    x3 = x.reshape(K, rows, x.shape[1])
    out3 = out.reshape(K, rows, out.shape[1])
    for k in range(K):
        np.dot(x3[k], w[k], out3[k])


@loops
def lstm_forward(gates, c_prev, act, c, tanh_c, h):
    """(i, f, o) = sigmoid(gates[:3C]), g = tanh(gates[3C:]), c' = f c + i g, h' = o tanh(c')
    (the LSTM controller of NTM.control). act [B, 4C] keeps (i, f, o, g) for the backward."""
    B, C = c.shape
    for b in range(B):
        # loops over rows taken as 1-D views: with the row index inside, LLVM did not vectorize
        # the loops with tanh_ (4x slower)
        gate, a = gates[b], act[b]
        for j in range(3 * C):
            a[j] = sigmoid_(gate[j])
        candidate, g = gate[3 * C :], a[3 * C :]
        for j in range(C):
            g[j] = tanh_(candidate[j])
        i, f, o = a[:C], a[C : 2 * C], a[2 * C : 3 * C]
        previous, cell, tc, out = c_prev[b], c[b], tanh_c[b], h[b]
        for j in range(C):
            cell[j] = f[j] * previous[j] + i[j] * g[j]
            tc[j] = tanh_(cell[j])
            out[j] = o[j] * tc[j]


@loops
def lstm_backward(dh, dc, act, c_prev, tanh_c, dgates):
    """The LSTM cell's gradient, in place: dh, dc [B, C] of h', c' -> dgates [B, 4C], and dc
    becomes that of c:
        dc~ = dc' + dh' o (1 - tanh(c')^2)
        d(i, f, o) = (dc~ g, dc~ c, dh' tanh(c')) * sig (1 - sig),  dg = dc~ i (1 - g^2)
        dc = dc~ f"""
    one = dh.dtype.type(1)
    B, C = dh.shape
    for b in range(B):
        gate, dgate, grad_h, grad_c = act[b], dgates[b], dh[b], dc[b]
        i, f, o, g = gate[:C], gate[C : 2 * C], gate[2 * C : 3 * C], gate[3 * C :]
        di, df, do, dg = dgate[:C], dgate[C : 2 * C], dgate[2 * C : 3 * C], dgate[3 * C :]
        previous, tc = c_prev[b], tanh_c[b]
        for j in range(C):
            dcell = grad_c[j] + grad_h[j] * o[j] * (one - tc[j] * tc[j])
            di[j] = dcell * g[j] * i[j] * (one - i[j])
            df[j] = dcell * previous[j] * f[j] * (one - f[j])
            do[j] = grad_h[j] * tc[j] * o[j] * (one - o[j])
            dg[j] = dcell * i[j] * (one - g[j] * g[j])
            grad_c[j] = dcell * f[j]


# -- the heads' activations -----------------------------------------------------------------------


@loops
def head_activations(pre, out, H, W, M, S, clip):
    """NTM.head_parameters on the blocked rows of pre [B, P] (head_order) -> out:
    clamp to +-clip, then keys as they are, shift = softmax per head, (beta, gamma - 1) =
    softplus, (gate, erase) = sigmoid, add = tanh."""
    one = pre.dtype.type(1)
    threshold = pre.dtype.type(SOFTPLUS_THRESHOLD)
    B, P = pre.shape
    HM, o = H * M, H * (M + S)
    gates, adds = o + 2 * H, o + 3 * H + W * M
    for b in range(B):
        x, y = pre[b], out[b]
        for p in range(P):
            y[p] = min(max(x[p], -clip), clip)
        for h in range(H):  # shift weighting s = softmax of its logits
            z = y[HM + h * S : HM + (h + 1) * S]
            top = z[0]
            for j in range(1, S):
                top = max(top, z[j])
            total = one - one
            for j in range(S):
                z[j] = exp_(z[j] - top)
                total += z[j]
            for j in range(S):
                z[j] /= total
        for p in range(o, gates):  # beta = softplus, gamma = 1 + softplus (the 1 added where used)
            v = y[p]
            e = exp_(v)  # log1p(e) = log(1 + e) e / ((1 + e) - 1), exact where 1 + e rounds
            u = one + e
            y[p] = v if v > threshold else (e if u == one else log_(u) * (e / (u - one)))
        z = y[gates:adds]
        for p in range(z.shape[0]):
            z[p] = sigmoid_(z[p])
        z = y[adds:]
        for p in range(z.shape[0]):
            z[p] = tanh_(z[p])


@loops
def head_activations_backward(d, pre, act, H, W, M, S, clip):
    """The heads layer's gradient in place: d [P] holds those of the activated head values
    (one row) and becomes that of the layer's output before the clamp."""
    one = d.dtype.type(1)
    threshold = d.dtype.type(SOFTPLUS_THRESHOLD)
    P = d.shape[0]
    HM, o = H * M, H * (M + S)
    gates, adds = o + 2 * H, o + 3 * H + W * M
    for h in range(H):  # softmax: dx = s (ds - sum_j ds_j s_j)
        start = HM + h * S
        total = one - one
        for j in range(S):
            total += d[start + j] * act[start + j]
        for j in range(S):
            d[start + j] = act[start + j] * (d[start + j] - total)
    for p in range(o, gates):  # softplus' = sigmoid (1 above the threshold)
        x = min(max(pre[p], -clip), clip)
        if x <= threshold:
            d[p] *= sigmoid_(x)
    for p in range(gates, adds):
        d[p] *= act[p] * (one - act[p])
    for p in range(adds, P):
        d[p] *= one - act[p] * act[p]
    for p in range(P):  # the clamp passes gradients inside [-clip, clip]
        if not (pre[p] >= -clip and pre[p] <= clip):
            d[p] = 0


# -- the memory operations (one sequence: memory [M, N], weightings [H, N]) ------------------------


@loops
def wrap(pad, values, sr):
    """pad [N + 2 sr] = values [N] with sr of its entries wrapped around each end:
    pad[k] = values((k - sr) mod N), so that a circular shift by up to sr reads it in order."""
    N = values.shape[0]
    middle = pad[sr : sr + N]  # slices, not computed indices: numba wraps a negative index, and
    for i in range(N):  # an index the compiler cannot prove non-negative costs a branch each
        middle[i] = values[i]
    for k in range(sr):
        pad[k] = values[N - sr + k]
        pad[sr + N + k] = values[k]


@loops
def address(memory, previous, act, R, W, S, sim, key_norm, row_norm, content, gated, shifted, new,
            pad):  # fmt: skip
    """All H heads' weightings for one sequence (ntm_memory.address): memory [M, N], previous
    [H, N], act [P] (head_activations' row); fills the cosine's parts, content, gated, shifted
    [H, N] and the new weightings `new` [H, N]. pad [N + S - 1]: scratch."""
    one = memory.dtype.type(1)
    eps = memory.dtype.type(EPS)
    M, N = memory.shape
    H = R + W
    o = H * (M + S)
    sr = (S - 1) // 2
    # |M_i|, one pass down the words
    for i in range(N):
        row_norm[i] = memory[0, i] * memory[0, i]
    for m in range(1, M):
        for i in range(N):
            row_norm[i] += memory[m, i] * memory[m, i]
    for i in range(N):
        row_norm[i] = np.sqrt(row_norm[i])
    for h in range(H):
        key = act[h * M : (h + 1) * M]
        beta, g, gamma = act[o + 2 * h], act[o + 2 * H + h], act[o + 2 * h + 1] + one
        s, wc, wg, ws, w = sim[h], content[h], gated[h], shifted[h], new[h]
        # eq. 6: K(k, M_i) = k . M_i / (|k| |M_i| + eps)
        kn = one - one
        for m in range(M):
            kn += key[m] * key[m]
        kn = np.sqrt(kn)
        key_norm[h] = kn
        for i in range(N):
            s[i] = key[0] * memory[0, i]
        for m in range(1, M):
            km = key[m]
            for i in range(N):
                s[i] += km * memory[m, i]
        # eq. 5: w^c(i) = exp(beta K(i)) / sum_j exp(beta K(j)); beta K <= beta (|K| <= 1) is
        # subtracted inside as a softmax subtracts its largest entry, so exp never overflows
        total = one - one
        for i in range(N):
            s[i] /= kn * row_norm[i] + eps
            wc[i] = exp_(beta * s[i] - beta)
            total += wc[i]
        total = one / total
        # eq. 7: w^g = g w^c + (1 - g) w_{t-1}
        for i in range(N):
            wc[i] *= total
            wg[i] = g * wc[i] + (one - g) * previous[h, i]
        # eq. 8: w~(i) = sum_j s_j w^g(i - o_j mod N), offsets o_j = j - sr, sr = (S - 1) / 2:
        # with pad(k) = w^g(k - sr mod N), w~(i) = sum_j s_j pad(i + 2 sr - j)
        wrap(pad, wg, sr)
        shift = act[H * M + h * S : H * M + (h + 1) * S]
        for j in range(S):
            sj, source = shift[j], pad[2 * sr - j : 2 * sr - j + N]
            if j == 0:
                for i in range(N):
                    ws[i] = sj * source[i]
            else:
                for i in range(N):
                    ws[i] += sj * source[i]
        # eq. 9: w(i) = (w~(i) + eps)^gamma / sum_j (w~(j) + eps)^gamma
        total = one - one
        for i in range(N):
            w[i] = exp_(gamma * log_(ws[i] + eps))
            total += w[i]
        total = one / total
        for i in range(N):
            w[i] *= total


@loops
def read_write(memory, weights, act, R, W, S, reads, out, read):
    """The reads (if `read`) and the write of one sequence: memory [M, N] before the step,
    weights [H, N] (reads first), act [P]; fills reads [R*M] and the memory after the step `out`
    [M, N]."""
    one = memory.dtype.type(1)
    M, N = memory.shape
    H = R + W
    erase = H * (M + S) + 3 * H
    add = erase + W * M
    first = weights[R]
    for m in range(M):
        row, new = memory[m], out[m]
        # eq. 2: r_h = sum_i w_h(i) M(i)
        for h in range(R if read else 0):
            w = weights[h]
            total = one - one
            for i in range(N):
                total += w[i] * row[i]
            reads[h * M + m] = total
        # eq. 3: M~(i) = M_{t-1}(i) prod_w (1 - w_w(i) e_w)
        # eq. 4: M_t(i) = M~(i) + sum_w w_w(i) a_w
        e, a = act[erase + m], act[add + m]
        if W == 1:  # one pass
            for i in range(N):
                new[i] = row[i] * (one - first[i] * e) + first[i] * a
            continue
        for i in range(N):
            new[i] = row[i] * (one - first[i] * e)
        for v in range(1, W):
            w, e = weights[R + v], act[erase + v * M + m]
            for i in range(N):
                new[i] *= one - w[i] * e
        for v in range(W):
            w, a = weights[R + v], act[add + v * M + m]
            for i in range(N):
                new[i] += w[i] * a


@loops
def memory_backward(
    dout, dreads, memory, previous, new, act, R, W, S, sim, key_norm, row_norm, content, gated,
    shifted, dnew, dmemory, dprevious, d, scratch,
):  # fmt: skip
    """One sequence's step back through the write, the reads and the addressing (read_write and
    address): dout [M, N] and dreads [R*M] of the memory after the step and of the reads, dnew
    [H, N] of the new weightings (the carry's; the write's and the reads' shares are added to
    it) -> dmemory [M, N] of the memory before the step, dprevious [H, N] of the weightings
    before it, and d [P] of the activated head values. memory [M, N] before the step, previous
    and new [H, N], act [P] and the addressing's parts as `address` left them. scratch
    [6 + H, N + S - 1].

    Two passes down the memory's words, which are what costs (the rest are N-long loops): the
    first adds the write's and the reads' shares to dnew, with which the addressing's gradient
    is taken; the second sets dmemory from every share at once and sums the keys' gradients."""
    one = memory.dtype.type(1)
    eps = memory.dtype.type(EPS)
    tiny = memory.dtype.type(TINY)
    M, N = memory.shape
    H = R + W
    o = H * (M + S)
    sr = (S - 1) // 2
    erase = o + 3 * H
    add = erase + W * M
    # whole rows (a part of a 2-D array's rows is typed as of unknown stride: not vectorized)
    keep, others, pad, dpad = scratch[0], scratch[1], scratch[2], scratch[3]
    dgated, drow, ddots = scratch[4], scratch[5], scratch[6:]  # ddots: d of the dots k_h . M_i

    # pass 1, eq. 2-4 back: with keep(i, m) = prod_w q_w(i, m), q_w = 1 - w_w(i) e_w(m),
    #   dw_w(i) += sum_m dM'(i, m) a_w(m) - dq_w(i, m) e_w(m),  dq_w = dM' M prod_{w' != w} q_w'
    #   (a product, never keep / q_w, which can be 0);  de_w(m) = - sum_i dq_w(i, m) w_w(i),
    #   da_w(m) = sum_i w_w(i) dM'(i, m);  dw_h(i) += sum_m dr_h(m) M(i, m) for the reads
    read, dread = new[0], dnew[0]
    for m in range(M):
        row, grad, dr = memory[m], dout[m], dreads[m]
        if W == 1:  # no other write heads: the first read head in the same loop
            e, a, w, dw = act[erase + m], act[add + m], new[R], dnew[R]
            de = one - one
            da = one - one
            for i in range(N):
                dq = grad[i] * row[i]
                dw[i] += grad[i] * a - dq * e
                de += dq * w[i]
                da += w[i] * grad[i]
                dread[i] += dr * row[i]
            d[erase + m] = -de
            d[add + m] = da
        else:
            for v in range(W):
                e, a, w, dw = act[erase + v * M + m], act[add + v * M + m], new[R + v], dnew[R + v]
                for i in range(N):
                    others[i] = grad[i] * row[i]
                for u in range(W):
                    if u != v:
                        wu, eu = new[R + u], act[erase + u * M + m]
                        for i in range(N):
                            others[i] *= one - wu[i] * eu
                de = one - one
                da = one - one
                for i in range(N):  # others is now dq_v
                    dw[i] += grad[i] * a - others[i] * e
                    de += others[i] * w[i]
                    da += w[i] * grad[i]
                d[erase + v * M + m] = -de
                d[add + v * M + m] = da
            for i in range(N):
                dread[i] += dr * row[i]
        for h in range(1, R):
            dr, dw = dreads[h * M + m], dnew[h]
            for i in range(N):
                dw[i] += dr * row[i]

    # the addressing, head by head, on N-long vectors
    for i in range(N):
        drow[i] = 0
    for h in range(H):
        key = act[h * M : (h + 1) * M]
        beta, g, gamma = act[o + 2 * h], act[o + 2 * H + h], act[o + 2 * h + 1] + one
        w, ws, wg, wc, s, dw = new[h], shifted[h], gated[h], content[h], sim[h], dnew[h]
        # eq. 9: u = w (dw - sum_j dw_j w_j), dw~ = gamma u / (w~ + eps),
        # dgamma = sum_i u_i log(w~_i + eps); dw~ goes to dpad[sr + i]
        total = one - one
        for i in range(N):
            total += dw[i] * w[i]
        dgamma = one - one
        dshifted = dpad[sr : sr + N]
        for i in range(N):
            u = w[i] * (dw[i] - total)
            base = ws[i] + eps
            dshifted[i] = gamma * u / base
            dgamma += u * log_(base)
        d[o + 2 * h + 1] = dgamma
        # eq. 8, with pad(k) = w^g(k - sr mod N) and dpad(k) = dw~(k - sr mod N):
        # ds_j = sum_i dw~(i) pad(i + 2 sr - j), dw^g(k) = sum_j s_j dpad(k + j)
        wrap(pad, wg, sr)
        for k in range(sr):
            dpad[k] = dpad[N + k]
            dpad[sr + N + k] = dpad[sr + k]
        shift = act[H * M + h * S : H * M + (h + 1) * S]
        for j in range(S):
            sj, source, dsource = shift[j], pad[2 * sr - j : 2 * sr - j + N], dpad[j : j + N]
            total = one - one
            for i in range(N):
                total += dshifted[i] * source[i]
            d[H * M + h * S + j] = total
            if j == 0:
                for i in range(N):
                    dgated[i] = sj * dsource[i]
            else:
                for i in range(N):
                    dgated[i] += sj * dsource[i]
        # eq. 7: dw^c = g dw^g, dw_{t-1} = (1 - g) dw^g, dg = sum_i dw^g_i (w^c_i - w_{t-1,i})
        dg = one - one
        total = one - one
        for i in range(N):
            dprevious[h, i] = (one - g) * dgated[i]
            dg += dgated[i] * (wc[i] - previous[h, i])
            total += g * dgated[i] * wc[i]
        d[o + 2 * H + h] = dg
        # eq. 5: dz = w^c (dw^c - sum_j dw^c_j w^c_j), dbeta = sum_i dz_i K(i);
        # eq. 6 with D = |k| |M_i| + eps: ddot = beta dz / D, dD = -ddot K,
        # d|k| = sum_i dD(i) |M_i|, and |M_i|'s sum_h dD(h, i) |k_h| (in drow)
        dbeta = one - one
        dnorm = one - one
        kn = key_norm[h]
        ddot = ddots[h]
        for i in range(N):
            dz = wc[i] * (g * dgated[i] - total)
            dbeta += dz * s[i]
            ddot[i] = beta * dz / (kn * row_norm[i] + eps)
            dden = -ddot[i] * s[i]
            dnorm += dden * row_norm[i]
            drow[i] += dden * kn
        d[o + 2 * h] = dbeta
        # dk = sum_i ddot(i) M_i + d|k| k / |k|: its second term here, the first in pass 2
        dnorm /= max(kn, tiny)
        for m in range(M):
            d[h * M + m] = dnorm * key[m]
    for i in range(N):
        drow[i] /= max(row_norm[i], tiny)

    # pass 2: dM(i) = dM'(i) keep(i) + sum_h w_h(i) dr_h (eq. 2-4) + sum_h ddot_h(i) k_h
    # + (sum_h dD(h, i) |k_h|) M_i / |M_i| (eq. 6); dk_h += sum_i ddot_h(i) M_i
    ddot, write = ddots[0], new[R]
    for m in range(M):
        row, grad, out, dr, k0 = memory[m], dout[m], dmemory[m], dreads[m], act[m]
        if W == 1:
            e = act[erase + m]
            total = one - one
            for i in range(N):
                out[i] = (
                    grad[i] * (one - write[i] * e) + read[i] * dr + ddot[i] * k0 + drow[i] * row[i]
                )
                total += ddot[i] * row[i]
        else:
            for i in range(N):
                keep[i] = one
            for v in range(W):  # eq. 3 again: keep(i, m), recomputed rather than kept per step
                w, e = new[R + v], act[erase + v * M + m]
                for i in range(N):
                    keep[i] *= one - w[i] * e
            total = one - one
            for i in range(N):
                out[i] = grad[i] * keep[i] + read[i] * dr + ddot[i] * k0 + drow[i] * row[i]
                total += ddot[i] * row[i]
        d[m] += total
        for h in range(1, R):
            w, dr = new[h], dreads[h * M + m]
            for i in range(N):
                out[i] += w[i] * dr
        for h in range(1, H):
            dd, kh = ddots[h], act[h * M + m]
            total = one - one
            for i in range(N):
                out[i] += dd[i] * kh
                total += dd[i] * row[i]
            d[h * M + m] += total


# -- the whole sequence ----------------------------------------------------------------------------


SEGMENT_BYTES = 1 << 20  # the memories the backward recomputes at a time: about an L2 cache


def checkpoint_steps(steps: int, step_bytes: int) -> int:
    """Every how many steps the forward keeps the memory: the backward recomputes the memories
    in between, a segment at a time, into a buffer of that many steps (SEGMENT_BYTES), where
    they stay in cache; keeping every step's memory instead (B x 10 KiB a step at the paper's
    size) cost cache misses writing it and reading it back: half the time of the write's
    backward went to loading the memory."""
    return max(1, min(steps, SEGMENT_BYTES // step_bytes))


@jit
def sequence_forward(
    x_gates, h0, c0, memory0, weights0, reads0, w_state, w_upper, b_upper, w_heads, b_heads, R, W,
    S, lstm, clip, save, every,
):  # fmt: skip
    """The NTM over every step of x_gates [T, B, G] (the inputs' share of the controller,
    bias included) from h0, c0 [L, B, C] (per controller layer), memory0 [B, M, N]
    (transposed), weights0 [B, H, N], reads0 [B, R*M], with w_state [K, D, G] (the first
    controller layer's recurrent rows, transposed), w_upper [L-1, K, 2C, G], b_upper [L-1, K, G]
    (the layers above it, transposed), w_heads [K, C, P], b_heads [K, P] (rows in head_order).
    Returns (hs [L, T, B, C] (every layer's; the last is the controller's output), reads
    [T, B, R*M], tape, states): the tape per step when `save`, one step of scratch otherwise;
    states: the cells and the weightings before each step and after the last when `save` (two
    alternating slots otherwise), the memory in two alternating slots, and when `save` its
    checkpoints, the memory before every `every`-th step."""
    T, B, G = x_gates.shape
    C, P = w_heads.shape[1], w_heads.shape[2]
    M, N = memory0.shape[1], memory0.shape[2]
    D, H, L = w_state.shape[1], R + W, h0.shape[0]
    dtype = x_gates.dtype
    steps = T if save else 1
    slots = T + 1 if save else 2
    hs = np.empty((L, T, B, C), dtype)
    reads = np.empty((T, B, R * M), dtype)
    tape = (
        np.empty((steps, B, D), dtype),  # state_in: the first layer's [r_{t-1}, h_{t-1}]
        np.empty((L - 1, steps, B, 2 * C), dtype),  # upper_in: a layer's [h below_t, h_{t-1}]
        np.empty((L, steps, B, G), dtype),  # act: each LSTM layer's (i, f, o, g)
        np.empty((L, steps, B, C), dtype),  # tanh_c: tanh of its new cell
        np.empty((steps, B, P), dtype),  # pre: the heads layer's output
        np.empty((steps, B, P), dtype),  # heads: ... clamped and activated
        np.empty((steps, B, H, N), dtype),  # sim: cosine similarity K
        np.empty((steps, B, H, N), dtype),  # content: w^c
        np.empty((steps, B, H, N), dtype),  # gated: w^g
        np.empty((steps, B, H, N), dtype),  # shifted: w~
        np.empty((steps, B, H), dtype),  # key_norm: |k|
        np.empty((steps, B, N), dtype),  # row_norm: |M_i|
    )
    states = (
        np.empty((L, slots, B, C), dtype),  # the controller's cells
        np.empty((2, B, M, N), dtype),  # the memory, before and after a step, alternating
        np.empty((slots, B, H, N), dtype),  # the weightings
        np.empty(((T - 1) // every + 1 if save else 0, B, M, N), dtype),  # checkpoints
    )
    for layer in range(L):
        states[0][layer, 0] = c0[layer]
    states[1][0] = memory0
    states[2][0] = weights0
    scratch = (np.empty((B, G), dtype), np.empty(N + S - 1, dtype))
    forward_steps(
        x_gates, h0, reads0, w_state, w_upper, b_upper, w_heads, b_heads, R, W, S, lstm, clip,
        save, every, hs, reads, tape, states, scratch,
    )  # fmt: skip
    return hs, reads, tape, states


@loops
def forward_steps(
    x_gates, h0, reads0, w_state, w_upper, b_upper, w_heads, b_heads, R, W, S, lstm, clip, save,
    every, hs, reads, tape, states, scratch,
):  # fmt: skip
    """sequence_forward's time loop, on the arrays it allocated."""
    state_in, upper_in, act, tanh_c, pre, heads, sim, content, gated, shifted = tape[:10]
    key_norm, row_norm = tape[10:]
    cs, memories, weights, checkpoints = states
    gates, pad = scratch
    T, B, G = x_gates.shape
    K, C, P = w_heads.shape
    M, N = memories.shape[2], memories.shape[3]
    H, RM, L = R + W, R * M, hs.shape[0]
    batch = B // K
    for t in range(T):
        s = t if save else 0
        now = t if save else t % 2
        after = t + 1 if save else (t + 1) % 2
        if save and t % every == 0:  # a checkpoint: the backward recomputes from it
            kept, memory = checkpoints[t // every], memories[t % 2]
            for b in range(B):
                for m in range(M):
                    x, y = kept[b, m], memory[b, m]
                    for i in range(N):
                        x[i] = y[i]
        h_prev = hs[0, t - 1] if t > 0 else h0[0]
        r_prev = reads[t - 1] if t > 0 else reads0
        # the controller: gates = x_gates + [r_{t-1}, h_{t-1}] @ w_state
        for b in range(B):
            x = state_in[s, b]
            for j in range(RM):
                x[j] = r_prev[b, j]
            if lstm:
                for j in range(C):
                    x[RM + j] = h_prev[b, j]
        seeded_dot(state_in[s], w_state, gates)
        for b in range(B):
            g, x = gates[b], x_gates[t, b]
            for j in range(G):
                g[j] += x[j]
        if lstm:
            lstm_forward(gates, cs[0, now], act[0, s], cs[0, after], tanh_c[0, s], hs[0, t])
            # each layer above: gates = [h below_t, h_{t-1}] @ w_upper + b_upper
            for layer in range(1, L):
                x_in = upper_in[layer - 1, s]
                h_own = hs[layer, t - 1] if t > 0 else h0[layer]
                for b in range(B):
                    x, below, own = x_in[b], hs[layer - 1, t, b], h_own[b]
                    for j in range(C):
                        x[j] = below[j]
                        x[C + j] = own[j]
                seeded_dot(x_in, w_upper[layer - 1], gates)
                for b in range(B):
                    g, bias = gates[b], b_upper[layer - 1, b // batch]
                    for j in range(G):
                        g[j] += bias[j]
                lstm_forward(
                    gates, cs[layer, now], act[layer, s], cs[layer, after], tanh_c[layer, s],
                    hs[layer, t],
                )  # fmt: skip
        else:  # one tanh layer; the cell passes through unused
            for b in range(B):
                g, h, c, c_next = gates[b], hs[0, t, b], cs[0, now, b], cs[0, after, b]
                for j in range(C):
                    h[j] = tanh_(g[j])
                    c_next[j] = c[j]
        # the heads layer (on the top layer's output) and its activations
        seeded_dot(hs[L - 1, t], w_heads, pre[s])
        for b in range(B):
            y, bias = pre[s, b], b_heads[b // batch]
            for p in range(P):
                y[p] += bias[p]
        head_activations(pre[s], heads[s], H, W, M, S, clip)
        for b in range(B):
            memory, new = memories[t % 2, b], memories[(t + 1) % 2, b]
            address(
                memory, weights[now, b], heads[s, b], R, W, S, sim[s, b], key_norm[s, b],
                row_norm[s, b], content[s, b], gated[s, b], shifted[s, b], weights[after, b], pad,
            )  # fmt: skip
            read_write(memory, weights[after, b], heads[s, b], R, W, S, reads[t, b], new, True)


@jit
def sequence_backward(
    dhs, dreads, hs, tape, states, w_state_t, w_upper_t, w_heads_t, R, W, S, lstm, clip, every
):  # fmt: skip
    """The gradients of sequence_forward (saved) in reverse, from dhs [T, B, C] (of the top
    layer's output) and dreads [T, B, R*M]; hs [L, T, B, C] as the forward gave it; w_state_t
    [K, G, D], w_upper_t [L-1, K, G, 2C], w_heads_t [K, P, C]. Returns dgates [L, T, B, G] (of
    each controller layer's pre-activations) and dheads [T, B, P] (of the heads layer's output),
    time-major, and the gradients of the initial state: h, c [L, B, C], memory [B, M, N],
    weights [B, H, N], reads [B, R*M]."""
    L, T, B, C = hs.shape
    P = w_heads_t.shape[1]
    G, D = w_state_t.shape[1], w_state_t.shape[2]
    M, N = states[1].shape[2], states[1].shape[3]
    H = R + W
    dtype = dhs.dtype
    dgates = np.empty((L, T, B, G), dtype)
    dheads = np.empty((T, B, P), dtype)  # every entry set by the backward of its step
    carry = (
        np.zeros((L, B, C), dtype),  # h
        np.zeros((L, B, C), dtype),  # c
        np.zeros((2, B, M, N), dtype),  # the memory: after the step, before it, alternating
        np.zeros((2, B, H, N), dtype),  # the weightings, alike
        np.zeros((B, R * M), dtype),  # the reads
    )
    scratch = (
        np.empty((H, N), dtype),  # the new weightings' gradient
        np.empty((6 + H, N + S - 1), dtype),
        np.empty((B, D), dtype),  # the controller's recurrent inputs' gradient
        np.empty((B, C), dtype),  # the heads layer's share of dh
        np.empty((every, B, M, N), dtype),  # a segment's memories, recomputed
        np.empty((B, 2 * C), dtype),  # a layer above the first: its inputs' gradient
    )
    backward_steps(
        dhs, dreads, hs, tape, states, w_state_t, w_upper_t, w_heads_t, R, W, S, lstm, clip,
        every, dgates, dheads, carry, scratch,
    )  # fmt: skip
    dh, dc, dmemory, dweights, dr = carry
    return dgates, dheads, dh, dc, dmemory[0], dweights[0], dr


@loops
def backward_steps(
    dhs, dreads, hs, tape, states, w_state_t, w_upper_t, w_heads_t, R, W, S, lstm, clip, every,
    dgates, dheads, carry, scratch,
):  # fmt: skip
    """sequence_backward's time loop, on the arrays it allocated."""
    state_in, upper_in, act, tanh_c, pre, heads, sim, content, gated, shifted = tape[:10]
    key_norm, row_norm = tape[10:]
    cs, _, weights, checkpoints = states
    dh, dc, dmemory, dweights, dr = carry
    dnew, space, dstate, dh_heads, memories, dupper = scratch
    T, B, C = dhs.shape
    M, N = memories.shape[2], memories.shape[3]
    H, RM, L = R + W, R * M, hs.shape[0]
    top = L - 1
    one = dhs.dtype.type(1)
    for t in range(T - 1, -1, -1):
        after, now = (t + 1) % 2, t % 2
        first = t - t % every  # the segment's first step
        if t == T - 1 or t % every == every - 1:
            # the memories before the segment's steps, from its checkpoint: eq. 3, 4 again
            for b in range(B):
                for m in range(M):
                    x, y = memories[0, b, m], checkpoints[first // every, b, m]
                    for i in range(N):
                        x[i] = y[i]
            for u in range(first, t):
                for b in range(B):
                    read_write(
                        memories[u - first, b], weights[u + 1, b], heads[u, b], R, W, S, dr[b],
                        memories[u + 1 - first, b], False,
                    )  # fmt: skip
        for b in range(B):
            x, y, dx, dy = dr[b], dh[top, b], dreads[t, b], dhs[t, b]
            for j in range(RM):
                x[j] += dx[j]
            for j in range(C):
                y[j] += dy[j]
        for b in range(B):
            for h in range(H):
                x, y = dnew[h], dweights[after, b, h]
                for i in range(N):
                    x[i] = y[i]
            memory_backward(
                dmemory[after, b], dr[b], memories[t - first, b], weights[t, b],
                weights[t + 1, b], heads[t, b], R, W, S, sim[t, b], key_norm[t, b],
                row_norm[t, b], content[t, b], gated[t, b], shifted[t, b], dnew,
                dmemory[now, b], dweights[now, b], dheads[t, b], space,
            )  # fmt: skip
            head_activations_backward(dheads[t, b], pre[t, b], heads[t, b], H, W, M, S, clip)
        # the heads layer: dh += dheads @ w_heads^T (of the top layer's output)
        seeded_dot(dheads[t], w_heads_t, dh_heads)
        for b in range(B):
            x, y = dh[top, b], dh_heads[b]
            for j in range(C):
                x[j] += y[j]
        if lstm:
            # the layers above the first, top down: d[h below_t, h_{t-1}] = dgates @ w_upper^T
            for layer in range(top, 0, -1):
                lstm_backward(
                    dh[layer], dc[layer], act[layer, t], cs[layer, t], tanh_c[layer, t],
                    dgates[layer, t],
                )  # fmt: skip
                seeded_dot(dgates[layer, t], w_upper_t[layer - 1], dupper)
                for b in range(B):
                    below, own, z = dh[layer - 1, b], dh[layer, b], dupper[b]
                    for j in range(C):
                        below[j] += z[j]
                        own[j] = z[C + j]
            lstm_backward(dh[0], dc[0], act[0, t], cs[0, t], tanh_c[0, t], dgates[0, t])
        else:
            for b in range(B):
                x, y, h = dgates[0, t, b], dh[0, b], hs[0, t, b]
                for j in range(C):
                    x[j] = y[j] * (one - h[j] * h[j])
        # the first layer's recurrent inputs: d[r_{t-1}, h_{t-1}] = dgates @ w_state^T
        seeded_dot(dgates[0, t], w_state_t, dstate)
        for b in range(B):
            x, y, z = dr[b], dh[0, b], dstate[b]
            for j in range(RM):
                x[j] = z[j]
            for j in range(C):
                y[j] = z[RM + j] if lstm else 0


# -- torch -----------------------------------------------------------------------------------------


class Forward(NamedTuple):
    """What run_forward returns (numpy arrays)."""

    hs: np.ndarray  # every controller layer's outputs [L, T, B, C]; the last is the output
    reads: np.ndarray  # the read vectors [T, B, R*M]
    tape: tuple  # sequence_forward's per-step tape; state_in [T, B, D], upper_in [L-1, T, B, 2C]
    states: tuple  # sequence_forward's states, with the memory's checkpoints
    every: int  # the steps between checkpoints


def array(tensor: torch.Tensor) -> np.ndarray:
    """A contiguous numpy view of tensor (a copy only where it is not contiguous)."""
    return tensor.detach().contiguous().numpy()


def per_seed(tensor: torch.Tensor, seeds: int) -> torch.Tensor:
    """A weight with its seed axis, [K, ...], as the kernel takes every weight."""
    return tensor if seeds > 1 else tensor.unsqueeze(0)


def by_layer(tensor: torch.Tensor, layers: int) -> torch.Tensor:
    """A state [B, L*C] (the layers side by side, NTMState's h and c) as [L, B, C]."""
    return tensor.view(tensor.shape[0], layers, -1).transpose(0, 1)


def run_forward(layout, inputs, state, weights: NTMWeights, save: bool) -> Forward:
    """sequence_forward on torch tensors: inputs [T, B, I], the initial state (an NTMState) and
    the weights (NTMWeights, the heads layer's rows in head_order)."""
    kernels_on_disk("ntm")
    K, I, L = layout.seeds, layout.inputs, layout.layers
    controller, controller_bias, interface, interface_bias, upper, upper_bias = weights
    x_gates = array(input_gates(K, inputs, controller[..., :I].transpose(-2, -1), controller_bias))
    h, c, memory, previous, reads = state
    T, B, M, N = len(inputs), memory.shape[0], memory.shape[2], memory.shape[1]
    every = checkpoint_steps(T, B * M * N * x_gates.itemsize) if save else T + 1
    return Forward(
        *sequence_forward(
            x_gates,
            array(by_layer(h, L)),
            array(by_layer(c, L)),
            array(memory.transpose(1, 2)),
            array(previous),
            array(reads.flatten(1)),
            array(per_seed(controller, K)[..., I:].transpose(-2, -1)),
            array(per_seed(upper, K).transpose(0, 1).transpose(-2, -1)),  # [L-1, K, 2C, G]
            array(per_seed(upper_bias, K).transpose(0, 1)),
            array(per_seed(interface, K).transpose(-2, -1)),
            array(per_seed(interface_bias, K)),
            layout.read_heads,
            layout.write_heads,
            layout.shifts,
            bool(layout.lstm),
            x_gates.dtype.type(layout.clip),
            save,
            every,
        ),
        every,
    )


def upper_grads(seeds: int, upper_in: torch.Tensor, dgates: torch.Tensor):
    """The gradients of the controller's layers above the first, weight [(K,) L-1, 4C, 2C] and
    bias [(K,) L-1, 4C], from their inputs upper_in [L-1, T, B, 2C] and the gradients of their
    pre-activations dgates [L-1, T, B, 4C]."""
    T, B = upper_in.shape[1:3]
    dw, db = zip(
        *(
            weight_grads(seeds, B // seeds, d.reshape(T * B, -1), x.reshape(T * B, -1))
            for x, d in zip(upper_in, dgates)
        )
    )
    axis = 0 if seeds == 1 else 1
    return torch.stack(dw, axis), torch.stack(db, axis)


class NTMSequence(torch.autograd.Function):
    """(layout, inputs [T, B, I], *flatten(operands)) -> (hs [T, B, C], reads [T, B, R*M]):
    fused_model's convention for a kernel; hs is the top controller layer's output. The
    operands (NTM.fused_operands): the initial state (h, c, memory, weights, reads) and the
    weights (NTMWeights: the heads layer's rows in head_order)."""

    @staticmethod
    def forward(ctx, layout, inputs, *operands):
        state, weights = NTMState(*operands[:5]), NTMWeights(*operands[5:])
        out = run_forward(layout, inputs, state, weights, True)
        top = torch.from_numpy(out.hs[-1])  # the controller's output
        ctx.layout, ctx.out = layout, out
        ctx.save_for_backward(inputs, weights.controller, weights.interface, weights.upper, top)
        return top, torch.from_numpy(out.reads)

    @staticmethod
    def backward(ctx, dhs, dreads):
        L, out = ctx.layout, ctx.out
        x, controller, interface, upper, top = ctx.saved_tensors
        K, I = L.seeds, L.inputs
        dgates, dheads, dh, dc, dmemory, dweights, dr = sequence_backward(
            array(dhs),
            array(dreads),
            out.hs,
            out.tape,
            out.states,
            array(per_seed(controller, K)[..., I:]),
            array(per_seed(upper, K).transpose(0, 1)),  # [L-1, K, G, 2C]
            array(per_seed(interface, K)),
            L.read_heads,
            L.write_heads,
            L.shifts,
            bool(L.lstm),
            out.reads.dtype.type(L.clip),
            out.every,
        )
        T, B = top.shape[:2]
        dgates = torch.from_numpy(dgates)
        dx, *dlayers = layer_grads(
            K,
            x,
            torch.from_numpy(out.tape[0]),  # state_in
            top,
            dgates[0].view(T * B, -1),
            torch.from_numpy(dheads).view(T * B, -1),
            controller,
            ctx.needs_input_grad[1],
        )
        dupper = (None, None)
        if L.layers > 1:
            dupper = upper_grads(K, torch.from_numpy(out.tape[1]), dgates[1:])
        dstate = (
            torch.from_numpy(dh).transpose(0, 1).reshape(B, -1),
            torch.from_numpy(dc).transpose(0, 1).reshape(B, -1),
            torch.from_numpy(dmemory).transpose(1, 2),
            torch.from_numpy(dweights),
            torch.from_numpy(dr).view(B, L.read_heads, -1),
        )
        return (None, dx, *dstate, *dlayers, *dupper)


def ntm_sequence(layout, inputs: torch.Tensor, operands: Operands):
    """(hs [T, B, C], reads [T, B, R*M]) of the NTM over inputs [T, B, I] from `operands`
    (NTM.fused_operands, or its K-seed form with layout.seeds = K): NTMSequence where grad is
    on, else the forward alone, keeping no tape (evaluation)."""
    tensors = flatten(operands)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (inputs, *tensors)):
        return NTMSequence.apply(layout, inputs, *tensors)
    out = run_forward(layout, inputs, operands.state, operands.weights, False)
    return torch.from_numpy(out.hs[-1]), torch.from_numpy(out.reads)
