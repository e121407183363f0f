"""The DNC's whole sequence as one native CPU kernel (numba): forward over T steps and the
hand-derived backward over them in reverse, the math of DNC.step (models.dnc on models.dnc_memory
and models.ntm_memory, the reference it is tested against).

Why: in torch a DNC step is ~80 tensor ops forward and ~150 backward; at the paper's size each costs microseconds of dispatch and
allocation, more than its arithmetic, and the [B, N, N] link matrix is read and written by
several of them in turn. Here one compiled loop per direction does the memory operations row by
row, and only the two linear layers of a step, the controller's recurrent share state_in @
W_state and the interface h @ W_int + b (and their transposes backward), are BLAS calls (np.dot
on contiguous 2-D blocks of rows).

Division of labour with torch (`DNCSequence`): torch computes the inputs' share of the
controller for the whole sequence first (fused_cell.input_gates) and the weight gradients last
(fused_cell.layer_grads, from the per-step gradients of the two layers' outputs that the
kernel's backward returns: dgates [T*B, G] and dinterface [T*B, P], time-major rows, with the
controller's recurrent inputs state_in [T, B, R*M + C]).

Shapes: T steps, B rows (= K seeds x batch, seed-major), C controller, G = 4C gates, R read
heads, N x M memory, P interface (the blocked layout of `interface_order`):

    [read keys R*M | write key M | write vector M | strengths R+1 | erase M, free R, g^a, g^w | modes 3R]
     none                                           1 + softplus    sigmoid                     softmax

Weights carry a leading seed axis K (1 for one model): W_state [K, R*M + C, G], W_int [K, P, C].

Layout and order of work, from profiles at the paper's size (N = 128, M = 20, batch 16), where
the N x N link matrix is most of the work:
- the memory is held transposed, [M, N] per row (word-major), so that every memory loop runs
  over the N locations, contiguous (N x M with M = 20 vectorizes poorly);
- the rows run in blocks of a few (`blocking`), each block through all T steps before the next,
  so that its link matrices can stay in a core's L2 cache from one step to the next; the matrix
  products are then per block of rows;
- the link matrix is never kept per step: the forward keeps it only before every segment-th step
  (checkpoints) and the backward remakes a segment's matrices from its checkpoint (`link_update`)
  before walking the segment back. L_{t-1} cannot be recovered from L_t (dividing by
  1 - w_i - w_j, which can vanish), and keeping all of them (44 MB a batch of 16, written and
  read back every step) left both passes waiting on memory. Within the backward step, L_t is
  remade row by row from L_{t-1}, so only one matrix is read;
- with one read head (the paper's) the link loops take rows in pairs (`links_forward`,
  `links_grad`): each column vector is loaded once a pair, ~1.4x faster than a row at a time;
- exp, sigmoid and tanh are computed by `exp` (a polynomial and the exponent bits set
  directly), which vectorizes; libm's do not, and they were a tenth of a training step;
- arrays are never allocated afresh per call when avoidable: a fresh array's pages are faulted
  in by the OS on first touch (`release` keeps tapes for reuse), and numba's slice assignment
  is several times slower than a loop.

The tape (`Tape`): what the backward needs, per step. The recurrent fields (controller cell,
memory, usage, precedence, weightings, row norms of the memory) have T + 1 slots, slot 0 holding
the initial state, so that step t reads slot t and writes slot t + 1. Without saving
(evaluation: up to 1000 sequences x 240 steps) they have two slots used in turn and the per-step
fields one, so nothing grows with T.

Equations are the paper's (Graves et al. 2016, Methods), as models.dnc_memory and
models.ntm_memory write them; each loop has its equation beside it, and each gradient loop the
derivative it implements. Same code for
float32 and float64: numba compiles one specialization per dtype (constants are made in the
arrays' dtype, so float32 stays float32), cached on disk (`cache=True`).
"""  # noqa: E501 - the layout diagram above is 112 columns wide and reads only whole

from __future__ import annotations

import weakref
from typing import NamedTuple

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from ntm_bench.models.dnc_memory import EPS as FLOOR  # usage floor before the allocation sort
from ntm_bench.models.dnc_memory import DNCState
from ntm_bench.models.fused_cell import input_gates, layer_grads
from ntm_bench.models.fused_model import Operands, Weights, flatten, kernels_on_disk, take
from ntm_bench.models.ntm_memory import EPS as COSINE_EPS  # the cosine similarity's denominator


class Layout(NamedTuple):
    """The sizes the kernel is called with (DNC.layout; `seeds` K for the K-seed pass)."""

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


# Reassociation lets sums vectorize; no nnan/ninf (1 / (1 + inf) = 0 is a wanted value) and no
# afn (approximate exp, log, sqrt).
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
JIT_OPTIONS = {"fastmath": FASTMATH, "error_model": "numpy"}  # numpy's: no check for / 0
jit = numba.njit(cache=True, nogil=True, **JIT_OPTIONS)
# exp keeps its order of operations (its range reduction must not be reassociated); the flags
# are per instruction, so they hold where it is inlined too
EXACT = {"fastmath": {"nsz", "contract"}, "error_model": "numpy"}


# ----------------------------------------------------------------------------------------------
# exp, sigmoid, tanh that vectorize


def exp(x):
    """e^x, for numba code (see `_exp`)."""
    return np.exp(x)


def sigmoid(x):
    """1 / (1 + e^-x), for numba code."""
    return 1 / (1 + np.exp(-x))


def tanh(x):
    """tanh x, for numba code."""
    return np.tanh(x)


@intrinsic
def pow2(typingctx, k):
    """2^k for an integral float k in the normal exponent range, in k's type: the exponent bits
    set directly (a bit cast vectorizes; libm's ldexp is a call)."""
    if not isinstance(k, types.Float):
        return None
    bits, mantissa, bias = (32, 23, 127) if k.bitwidth == 32 else (64, 52, 1023)

    def codegen(context, builder, signature, args):
        integer = ir.IntType(bits)
        exponent = builder.add(builder.fptosi(args[0], integer), ir.Constant(integer, bias))
        exponent = builder.shl(exponent, ir.Constant(integer, mantissa))
        return builder.bitcast(exponent, context.get_value_type(k))

    return k(k), codegen


LN2_HI, LN2_LO = 0.693359375, -2.12194440054690583e-4  # ln 2, the first part exact in 9 bits


@overload(exp, jit_options=EXACT)
def _exp(x):
    """e^x = 2^k e^r,  k = round(x / ln 2),  r = x - k ln 2 in [-ln2/2, ln2/2] (ln 2 in two parts,
    so that k ln 2 is exact), e^r by its Taylor polynomial to r^12 (relative error < 2e-16),
    in x's dtype. x is clamped to [-87, 87], which keeps 2^k normal in float32; the clamp
    changes results only below 1e-37 in absolute value (a sigmoid's tail)."""
    if not isinstance(x, types.Float):
        return None
    dtype = np.float32 if x.bitwidth == 32 else np.float64
    bound, log2e, hi, lo = dtype(87.0), dtype(1.4426950408889634), dtype(LN2_HI), dtype(LN2_LO)
    half = dtype(0.5)
    c = [dtype(1.0 / np.prod(np.arange(1.0, n + 1))) for n in range(13)]  # 1 / n!
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12 = c

    def impl(x):
        x = min(max(x, -bound), bound)
        k = np.floor(x * log2e + half)
        r = (x - k * hi) - k * lo
        p = c12 * r + c11
        p = p * r + c10
        p = p * r + c9
        p = p * r + c8
        p = p * r + c7
        p = p * r + c6
        p = p * r + c5
        p = p * r + c4
        p = p * r + c3
        p = p * r + c2
        p = p * r + c1
        p = p * r + c0
        return p * pow2(k)

    return impl


@overload(sigmoid, jit_options=EXACT)
def _sigmoid(x):
    """sigma(x) = 1 / (1 + e^-x)."""
    if not isinstance(x, types.Float):
        return None
    one = (np.float32 if x.bitwidth == 32 else np.float64)(1.0)
    return lambda x: one / (one + exp(-x))


@overload(tanh, jit_options=EXACT)
def _tanh(x):
    """tanh x = 2 / (1 + e^-2x) - 1: absolute error a rounding of 1 (relative error near 0 is
    larger; nothing here divides by tanh)."""
    if not isinstance(x, types.Float):
        return None
    dtype = np.float32 if x.bitwidth == 32 else np.float64
    one, two = dtype(1.0), dtype(2.0)
    return lambda x: two / (one + exp(-two * x)) - one


# ----------------------------------------------------------------------------------------------
# Small helpers (one row of one step)


@jit
def activations(pre, R, M, clip, raw, strengths, erase, free, modes):
    """One row's interface vector pre [P], clamped (raw = clamp(pre, -clip, clip)) and activated
    by blocks (the layout of the module docstring): strengths [R + 1] (reads, then the write)
    = 1 + softplus, erase [M], free gates [R], g^a, g^w = sigmoid, read modes [R, 3]
    (backward, content, forward) = softmax per head. Keys and the write vector are raw's own
    blocks. Returns (g^a, g^w)."""
    one = pre.dtype.type(1.0)
    threshold = pre.dtype.type(20.0)  # torch's softplus: x itself above it
    for q in range(pre.shape[0]):
        raw[q] = min(max(pre[q], -clip), clip)
    o = (R + 2) * M
    for i in range(R + 1):
        x = raw[o + i]
        strengths[i] = one + (x if x > threshold else np.log1p(np.exp(x)))
    g = o + R + 1
    for m in range(M):
        erase[m] = sigmoid(raw[g + m])
    for r in range(R):
        free[r] = sigmoid(raw[g + M + r])
    allocation_gate = sigmoid(raw[g + M + R])
    write_gate = sigmoid(raw[g + M + R + 1])
    q = g + M + R + 2
    for r in range(R):  # pi^r = softmax(raw^r) over (backward, content, forward)
        top = max(raw[q + 3 * r], max(raw[q + 3 * r + 1], raw[q + 3 * r + 2]))
        total = one - one
        for k in range(3):
            modes[r, k] = exp(raw[q + 3 * r + k] - top)
            total += modes[r, k]
        for k in range(3):
            modes[r, k] /= total
    return allocation_gate, write_gate


@jit
def content_weights(memory, key, strength, row_norm, similarity, out):
    """c(i) = exp(beta K(i)) / sum_j exp(beta K(j)),  K(i) = k . M_i / (|k| |M_i| + eps)
    (ntm_memory.content_weights) for one key [M] on the memory [M, N] (transposed) with row
    norms |M_i| [N]. Fills similarity K [N] and out c [N]; returns |k|."""
    zero = memory.dtype.type(0.0)
    eps = memory.dtype.type(COSINE_EPS)
    M, N = memory.shape
    key_norm = zero
    for m in range(M):
        key_norm += key[m] * key[m]
    key_norm = np.sqrt(key_norm)
    for i in range(N):
        similarity[i] = zero
    for m in range(M):  # k . M_i
        k = key[m]
        for i in range(N):
            similarity[i] += k * memory[m, i]
    top = memory.dtype.type(-np.inf)
    for i in range(N):  # K(i) = k . M_i / (|k| |M_i| + eps)
        similarity[i] /= key_norm * row_norm[i] + eps
        top = max(top, strength * similarity[i])
    total = zero
    for i in range(N):  # softmax_i(beta K(i))
        out[i] = exp(strength * similarity[i] - top)
        total += out[i]
    for i in range(N):
        out[i] /= total
    return key_norm


@jit
def content_grad(
    dout, out, similarity, memory, key, strength, key_norm, row_norm, dmemory, dkey, ddot, dscale
):
    """The gradient of content_weights (models.ntm_memory): with
    dz = c o (dc - sum_j dc_j c_j), dK = beta dz, D(i) = |k| |M_i| + eps,

        dbeta = sum_i dz(i) K(i)
        ddot = dK / D,   dD = -dK K / D
        dk = sum_i ddot(i) M_i + (sum_i dD(i) |M_i|) k / |k|
        dM_i += ddot(i) k + dD(i) |k| M_i / |M_i|

    dout, out c, similarity K [N]; memory [M, N] (transposed); key [M]; row_norm [N]. Adds into
    dmemory [M, N], writes dkey [M]; returns dbeta. ddot, dscale [N]: scratch. A zero key or row
    has a zero norm gradient (as torch.linalg.vector_norm's), hence the floors on the norms."""
    zero = memory.dtype.type(0.0)
    eps = memory.dtype.type(COSINE_EPS)
    tiny = memory.dtype.type(1e-30)
    M, N = memory.shape
    total = zero
    for i in range(N):
        total += dout[i] * out[i]
    dstrength = zero
    along = zero  # sum_i dD(i) |M_i|
    for i in range(N):
        dz = out[i] * (dout[i] - total)
        dstrength += dz * similarity[i]
        ddot[i] = strength * dz / (key_norm * row_norm[i] + eps)
        dden = -ddot[i] * similarity[i]  # dD
        along += dden * row_norm[i]
        dscale[i] = dden * key_norm / max(row_norm[i], tiny)  # dD(i) |k| / |M_i|
    along *= (key_norm / max(key_norm, tiny)) / max(key_norm, tiny)  # (0 for a zero key)
    for m in range(M):  # dk = sum_i ddot(i) M_i + along k;  dM_i += ddot(i) k + dscale(i) M_i
        k = key[m]
        dot = zero
        for i in range(N):
            dot += ddot[i] * memory[m, i]
            dmemory[m, i] += ddot[i] * k + dscale[i] * memory[m, i]
        dkey[m] = dot + along * k
    return dstrength


@jit
def link_update(link_prev, precedence_prev, write, link):
    """L_t[i,j] = (1 - w_i - w_j) L_{t-1}[i,j] + w_i p_{t-1}[j],  L_t[i,i] = 0: links_forward's
    update of the link matrix alone (the same expression), for the backward to remake the link
    matrices of a segment from its checkpoint. link_prev and link must be different arrays."""
    one = write.dtype.type(1.0)
    zero = write.dtype.type(0.0)
    N = write.shape[0]
    for i in range(N):
        w_i = write[i]
        keep_i = one - w_i
        for j in range(N):
            link[i, j] = (keep_i - write[j]) * link_prev[i, j] + w_i * precedence_prev[j]
        link[i, i] = zero


@jit
def links_forward(link_prev, precedence_prev, write, read_prev, link, forward, backward):
    """The temporal links of one row (dnc_memory.link and directional_weights), w = w^w_t:

        L_t[i,j] = (1 - w_i - w_j) L_{t-1}[i,j] + w_i p_{t-1}[j],  L_t[i,i] = 0
        f^r_t[i] = sum_j L_t[i,j] w^r_{t-1}[j]      (forward, f = L_t w^r_{t-1})
        b^r_t[j] = sum_i w^r_{t-1}[i] L_t[i,j]      (backward, b = L_t^T w^r_{t-1})

    link_prev, link [N, N] (different arrays: a loop that sees its input and output overlap does
    not vectorize); read_prev, forward, backward [R, N]. With one read head the rows go in pairs,
    one pass over j each, so that the column vectors (w, p, w^r, b) are loaded once a pair;
    otherwise, and for an odd last row, one row at a time, a pass for L_t and one per head."""
    one = write.dtype.type(1.0)
    zero = write.dtype.type(0.0)
    R, N = read_prev.shape
    for r in range(R):
        for j in range(N):
            backward[r, j] = zero
    i = 0
    if R == 1:  # (no row views: each would cost a reference count up and down)
        while i + 1 < N:
            k = i + 1
            w_i, w_k = write[i], write[k]
            keep_i, keep_k = one - w_i, one - w_k
            read_i, read_k = read_prev[0, i], read_prev[0, k]
            dot_i = zero
            dot_k = zero
            for j in range(N):
                w_j, p_j = write[j], precedence_prev[j]
                l_i = (keep_i - w_j) * link_prev[i, j] + w_i * p_j
                l_k = (keep_k - w_j) * link_prev[k, j] + w_k * p_j
                l_i = zero if j == i else l_i
                l_k = zero if j == k else l_k
                link[i, j] = l_i
                link[k, j] = l_k
                dot_i += l_i * read_prev[0, j]
                dot_k += l_k * read_prev[0, j]
                backward[0, j] += read_i * l_i + read_k * l_k
            forward[0, i] = dot_i
            forward[0, k] = dot_k
            i += 2
    while i < N:
        w_i = write[i]
        keep_i = one - w_i
        for j in range(N):
            link[i, j] = (keep_i - write[j]) * link_prev[i, j] + w_i * precedence_prev[j]
        link[i, i] = zero
        for r in range(R):
            read_i = read_prev[r, i]
            dot = zero
            for j in range(N):
                dot += link[i, j] * read_prev[r, j]
                backward[r, j] += read_i * link[i, j]
            forward[r, i] = dot
        i += 1


@jit
def links_grad(
    dlink,
    dforward,
    dbackward,
    link_prev,
    precedence_prev,
    write,
    read_prev,
    dprecedence,
    dwrite,
    dread_prev,
    g_row,
    g_link,
    g_column,
):
    """The gradient of links_forward, derived by hand: with G the total gradient on L_t,

        G[i,j] = dL_t[i,j] + sum_r (df^r[i] w^r_{t-1}[j] + w^r_{t-1}[i] db^r[j]),  G[i,i] = 0:
        dL_{t-1}[i,j] = (1 - w_i - w_j) G[i,j]
        dp_{t-1}[j] += sum_i w_i G[i,j]
        dw_i += sum_j G[i,j] p_{t-1}[j] - sum_j G[i,j] L_{t-1}[i,j] - sum_j G[j,i] L_{t-1}[j,i]
        dw^r_{t-1} = df^r L_t + db^r L_t^T

    dlink [N, N]: dL_t in, dL_{t-1} out (in place); dforward, dbackward, read_prev [R, N]; adds
    into dprecedence and dwrite [N], writes dread_prev [R, N]. L_t is remade row by row from
    L_{t-1} (links_forward's expression): one matrix read, not two. Rows in pairs with one head,
    as links_forward's; g_row, g_link, g_column [N]: scratch."""
    one = write.dtype.type(1.0)
    zero = write.dtype.type(0.0)
    R, N = read_prev.shape
    for j in range(N):
        g_column[j] = zero  # sum_i G[i,j] L_{t-1}[i,j]
    for r in range(R):
        for j in range(N):
            dread_prev[r, j] = zero
    i = 0
    if R == 1:  # (no row views: each would cost a reference count up and down)
        while i + 1 < N:
            k = i + 1
            w_i, w_k = write[i], write[k]
            keep_i, keep_k = one - w_i, one - w_k
            df_i, df_k = dforward[0, i], dforward[0, k]
            read_i, read_k = read_prev[0, i], read_prev[0, k]
            row_i = zero
            row_k = zero
            dot_i = zero
            dot_k = zero
            for j in range(N):
                w_j, p_j = write[j], precedence_prev[j]
                read_j, db_j = read_prev[0, j], dbackward[0, j]
                g_i = dlink[i, j] + df_i * read_j + read_i * db_j  # G
                g_k = dlink[k, j] + df_k * read_j + read_k * db_j
                g_i = zero if j == i else g_i
                g_k = zero if j == k else g_k
                q_i, q_k = link_prev[i, j], link_prev[k, j]  # L_{t-1}
                l_i = (keep_i - w_j) * q_i + w_i * p_j  # L_t
                l_k = (keep_k - w_j) * q_k + w_k * p_j
                l_i = zero if j == i else l_i
                l_k = zero if j == k else l_k
                dlink[i, j] = (keep_i - w_j) * g_i
                dlink[k, j] = (keep_k - w_j) * g_k
                dprecedence[j] += w_i * g_i + w_k * g_k
                row_i += g_i * (p_j - q_i)
                row_k += g_k * (p_j - q_k)
                g_column[j] += g_i * q_i + g_k * q_k
                dread_prev[0, j] += df_i * l_i + df_k * l_k
                dot_i += db_j * l_i
                dot_k += db_j * l_k
            dwrite[i] += row_i
            dwrite[k] += row_k
            dread_prev[0, i] += dot_i
            dread_prev[0, k] += dot_k
            i += 2
    while i < N:
        w_i = write[i]
        keep_i = one - w_i
        for j in range(N):
            g_row[j] = dlink[i, j]
        for r in range(R):
            df_i = dforward[r, i]
            read_i = read_prev[r, i]
            for j in range(N):
                g_row[j] += df_i * read_prev[r, j] + read_i * dbackward[r, j]
        g_row[i] = zero
        row = zero
        for j in range(N):
            gij = g_row[j]
            previous = link_prev[i, j]
            g_link[j] = (keep_i - write[j]) * previous + w_i * precedence_prev[j]  # L_t[i, j]
            dlink[i, j] = (keep_i - write[j]) * gij
            dprecedence[j] += w_i * gij
            row += gij * (precedence_prev[j] - previous)
            g_column[j] += gij * previous
        g_link[i] = zero
        dwrite[i] += row
        for r in range(R):
            df_i = dforward[r, i]
            dot = zero
            for j in range(N):
                dread_prev[r, j] += df_i * g_link[j]
                dot += dbackward[r, j] * g_link[j]
            dread_prev[r, i] += dot
        i += 1
    for j in range(N):
        dwrite[j] -= g_column[j]


# ----------------------------------------------------------------------------------------------
# One row of one step: the memory operations forward and backward


@jit
def memory_forward(
    R,
    M,
    raw,
    strengths,
    erase,
    free,
    modes,
    allocation_gate,
    write_gate,
    memory_prev,
    memory,
    usage_prev,
    usage,
    link_prev,
    link,
    precedence_prev,
    precedence,
    read_prev,
    read,
    write_prev,
    write,
    row_norm_prev,
    row_norm,
    retention,
    sorted_usage,
    order,
    before,
    allocation,
    similarity_w,
    content_w,
    forward,
    backward,
    similarity_r,
    key_norm_r,
    content_r,
    reads,
):
    """The memory operations of one batch row in one step, from the activated interface
    (`activations`): usage, allocation, write weighting, write, links, read weighting, read.
    `_prev` arguments hold the state before the step, their partners receive the state after
    it (different arrays: a loop that sees its input and output overlap does not vectorize); the
    memory is [M, N] (transposed). The rest are this step's intermediates for the backward;
    `order` comes in holding the previous step's sort order (a good start for the insertion
    sort). Returns |k^w|."""
    one = raw.dtype.type(1.0)
    zero = raw.dtype.type(0.0)
    floor = raw.dtype.type(FLOOR)
    N = memory.shape[1]
    write_key = raw[R * M : R * M + M]
    add = raw[R * M + M : R * M + 2 * M]

    # retention  psi_t[n] = prod_i (1 - f^i_t w^{r,i}_{t-1}[n])
    # usage      u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} o w^w_{t-1}) o psi_t
    for n in range(N):
        retention[n] = one
    for r in range(R):
        f = free[r]
        for n in range(N):
            retention[n] *= one - f * read_prev[r, n]
    for n in range(N):
        usage[n] = (usage_prev[n] + write_prev[n] - usage_prev[n] * write_prev[n]) * retention[n]

    # allocation  a_t[phi_j] = (1 - u_t[phi_j]) prod_{i<j} u_t[phi_i],  u floored to
    # EPS + (1 - EPS) u, phi sorting it ascending, ties by location (dnc_memory.allocation's
    # stable sort): an insertion sort by (usage, location) from the previous step's order, which
    # usage changes little, so a step costs ~N comparisons and a few moves
    for j in range(N):
        sorted_usage[j] = floor + (one - floor) * usage[order[j]]
    for j in range(1, N):
        value, index = sorted_usage[j], order[j]
        i = j - 1
        while i >= 0 and (
            sorted_usage[i] > value or (sorted_usage[i] == value and order[i] > index)
        ):
            sorted_usage[i + 1] = sorted_usage[i]
            order[i + 1] = order[i]
            i -= 1
        sorted_usage[i + 1] = value
        order[i + 1] = index
    product = one  # prod_{i<j} u[phi_i], exclusive
    for j in range(N):
        before[j] = product
        allocation[order[j]] = (one - sorted_usage[j]) * product
        product *= sorted_usage[j]

    # write content  c^w_t = softmax(beta^w K(M_{t-1}, k^w))
    key_norm_w = content_weights(
        memory_prev, write_key, strengths[R], row_norm_prev, similarity_w, content_w
    )
    # write weighting  w^w_t = g^w [g^a a_t + (1 - g^a) c^w_t]
    total_write = zero
    for n in range(N):
        write[n] = write_gate * (
            allocation_gate * allocation[n] + (one - allocation_gate) * content_w[n]
        )
        total_write += write[n]

    # write  M_t = M_{t-1} o (1 - w^w e^T) + w^w v^T, and the new row norms |M_t[n]|
    for n in range(N):
        row_norm[n] = zero
    for m in range(M):
        e, v = erase[m], add[m]
        for n in range(N):
            value = memory_prev[m, n] * (one - write[n] * e) + write[n] * v
            memory[m, n] = value
            row_norm[n] += value * value
    for n in range(N):
        row_norm[n] = np.sqrt(row_norm[n])

    # links  L_t, and the forward and backward weightings f_t, b_t
    links_forward(link_prev, precedence_prev, write, read_prev, link, forward, backward)

    # precedence  p_t = (1 - sum_i w^w_t[i]) p_{t-1} + w^w_t
    for n in range(N):
        precedence[n] = (one - total_write) * precedence_prev[n] + write[n]

    # read content  c^{r,i}_t = softmax(beta^{r,i} K(M_t, k^{r,i}))
    for r in range(R):
        key_norm_r[r] = content_weights(
            memory,
            raw[r * M : r * M + M],
            strengths[r],
            row_norm,
            similarity_r[r],
            content_r[r],
        )
    # read weighting  w^{r,i}_t = pi^i[1] b^i_t + pi^i[2] c^{r,i}_t + pi^i[3] f^i_t
    # read            r^i_t[m] = sum_n M_t[n, m] w^{r,i}_t[n]
    for r in range(R):
        for n in range(N):
            read[r, n] = (
                modes[r, 0] * backward[r, n]
                + modes[r, 1] * content_r[r, n]
                + modes[r, 2] * forward[r, n]
            )
        for m in range(M):
            dot = zero
            for n in range(N):
                dot += read[r, n] * memory[m, n]
            reads[r * M + m] = dot
    return key_norm_w


@jit
def memory_backward(
    R,
    M,
    pre,
    clip,
    raw,
    strengths,
    erase,
    free,
    modes,
    allocation_gate,
    write_gate,
    memory_prev,
    memory,
    usage_prev,
    link_prev,
    precedence_prev,
    read_prev,
    read,
    write_prev,
    write,
    row_norm_prev,
    row_norm,
    retention,
    sorted_usage,
    order,
    before,
    allocation,
    similarity_w,
    key_norm_w,
    content_w,
    forward,
    backward,
    similarity_r,
    key_norm_r,
    content_r,
    dreads,
    dmemory,
    dusage,
    dlink,
    dprecedence,
    dread,
    dwrite,
    dinterface,
    g_read,
    g_read_prev,
    g_backward,
    g_forward,
    g_content,
    g_write,
    g_row,
    g_column,
    g_link,
    g_allocation,
    g_sorted,
):
    """One batch row's step of the memory operations backward: the gradients of memory_forward's
    inputs from those of its outputs (the derivatives of models.dnc_memory's and
    models.ntm_memory's operations, the step's in reverse order).

    In: dreads [R*M], the gradient of the step's read vectors; dmemory ([M, N], transposed),
    dusage, dlink, dprecedence, dread (w^r), dwrite (w^w): the gradients of the state after the
    step, which are overwritten in place by those of the state before it. Out: dinterface [P],
    the gradient of the interface layer's output (before the clamp). g_*: scratch."""
    one = raw.dtype.type(1.0)
    zero = raw.dtype.type(0.0)
    floor = raw.dtype.type(FLOOR)
    N = memory.shape[1]
    o = (R + 2) * M  # where the strengths start
    g = o + R + 1  # where the sigmoid block starts (erase)
    q = g + M + R + 2  # where the read modes start
    write_key = raw[R * M : R * M + M]
    add = raw[R * M + M : o]

    # precedence  p_t = (1 - sum_i w_i) p_{t-1} + w:
    #   dp_{t-1} = (1 - sum_i w_i) dp_t,  dw_i = dp_t[i] - sum_j dp_t[j] p_{t-1}[j]
    total_write = zero
    along = zero
    for n in range(N):
        total_write += write[n]
        along += dprecedence[n] * precedence_prev[n]
    for n in range(N):
        g_write[n] = dwrite[n] + dprecedence[n] - along
        dprecedence[n] *= one - total_write

    # read  r^i[m] = sum_n M_t[n, m] w^{r,i}[n]:
    #   dM_t[n, m] += sum_i w^{r,i}[n] dr^i[m],  dw^{r,i}[n] += sum_m M_t[n, m] dr^i[m]
    for r in range(R):
        for n in range(N):
            g_read[r, n] = dread[r, n]
    for m in range(M):
        for r in range(R):
            d = dreads[r * M + m]
            for n in range(N):
                dmemory[m, n] += read[r, n] * d
                g_read[r, n] += memory[m, n] * d

    # read weighting  w^r = pi[1] b + pi[2] c + pi[3] f:
    #   db = pi[1] dw^r,  dc = pi[2] dw^r,  df = pi[3] dw^r,  dpi[k] = sum_n dw^r o (b, c, f)[k]
    # read modes  pi = softmax(raw):  draw = pi o (dpi - sum_k dpi_k pi_k)
    for r in range(R):
        d0 = zero
        d1 = zero
        d2 = zero
        for n in range(N):
            d = g_read[r, n]
            d0 += d * backward[r, n]
            d1 += d * content_r[r, n]
            d2 += d * forward[r, n]
            g_backward[r, n] = modes[r, 0] * d
            g_content[r, n] = modes[r, 1] * d
            g_forward[r, n] = modes[r, 2] * d
        mean = d0 * modes[r, 0] + d1 * modes[r, 1] + d2 * modes[r, 2]
        dinterface[q + 3 * r] = modes[r, 0] * (d0 - mean)
        dinterface[q + 3 * r + 1] = modes[r, 1] * (d1 - mean)
        dinterface[q + 3 * r + 2] = modes[r, 2] * (d2 - mean)

    # read content  c^{r,i} = softmax(beta^{r,i} K(M_t, k^{r,i})): into dM_t, dk^{r,i}, dbeta^{r,i};
    # strengths  beta = 1 + softplus(raw):  draw = dbeta sigma(raw)
    for r in range(R):
        dstrength = content_grad(
            g_content[r],
            content_r[r],
            similarity_r[r],
            memory,
            raw[r * M : r * M + M],
            strengths[r],
            key_norm_r[r],
            row_norm,
            dmemory,
            dinterface[r * M : r * M + M],
            g_row,
            g_column,
        )
        dinterface[o + r] = dstrength * sigmoid(raw[o + r])

    # links  (L_t, f_t, b_t) from (L_{t-1}, p_{t-1}, w^w_t, w^r_{t-1}): into dL (in place),
    # dp_{t-1}, dw^w_t, dw^r_{t-1}
    links_grad(
        dlink,
        g_forward,
        g_backward,
        link_prev,
        precedence_prev,
        write,
        read_prev,
        dprecedence,
        g_write,
        g_read_prev,
        g_row,
        g_link,
        g_column,
    )

    # write  M_t = M_{t-1} o (1 - w e^T) + w v^T:
    #   dM_{t-1} = dM_t o (1 - w e^T),  dw_i += sum_m dM_t[i,m] (v_m - M_{t-1}[i,m] e_m)
    #   de_m = -sum_i dM_t[i,m] M_{t-1}[i,m] w_i,   dv_m = sum_i w_i dM_t[i,m]
    for m in range(M):
        e, v = erase[m], add[m]
        de = zero
        dv = zero
        for n in range(N):
            d = dmemory[m, n]
            previous = memory_prev[m, n]
            g_write[n] += d * (v - previous * e)
            de -= d * previous * write[n]
            dv += write[n] * d
            dmemory[m, n] = d * (one - write[n] * e)
        dinterface[g + m] = de * e * (one - e)  # erase = sigma(raw): draw = de sigma (1 - sigma)
        dinterface[R * M + M + m] = dv

    # write weighting  w = g^w m,  m = g^a a + (1 - g^a) c^w:
    #   dm = g^w dw,  dg^w = sum_n dw m,  da = g^a dm,  dc^w = (1 - g^a) dm,
    #   dg^a = sum_n dm (a - c^w)
    dwrite_gate = zero
    dallocation_gate = zero
    for n in range(N):
        mix = allocation_gate * allocation[n] + (one - allocation_gate) * content_w[n]
        dwrite_gate += g_write[n] * mix
        dmix = write_gate * g_write[n]
        dallocation_gate += dmix * (allocation[n] - content_w[n])
        g_allocation[n] = allocation_gate * dmix
        g_content[0, n] = dmix - g_allocation[n]
    dinterface[g + M + R] = dallocation_gate * allocation_gate * (one - allocation_gate)
    dinterface[g + M + R + 1] = dwrite_gate * write_gate * (one - write_gate)

    # write content  c^w = softmax(beta^w K(M_{t-1}, k^w)): into dM_{t-1}, dk^w, dbeta^w
    dstrength = content_grad(
        g_content[0],
        content_w,
        similarity_w,
        memory_prev,
        write_key,
        strengths[R],
        key_norm_w,
        row_norm_prev,
        dmemory,
        dinterface[R * M : R * M + M],
        g_row,
        g_column,
    )
    dinterface[o + R] = dstrength * sigmoid(raw[o + R])

    # allocation  a[phi_j] = (1 - s_j) P_j,  P_j = prod_{i<j} s_i,  s the floored usage sorted:
    #   ds_j = -da[phi_j] P_j + (1 / s_j) sum_{k>j} da[phi_k] a[phi_k],  du[phi_j] = (1 - EPS) ds_j
    # (the suffix sum exclusive: no inclusive sum minus its own term, which would cancel)
    for j in range(N):  # da[phi_j], and its term da[phi_j] a[phi_j]
        g_sorted[j] = g_allocation[order[j]]
        g_column[j] = g_sorted[j] * (one - sorted_usage[j]) * before[j]
    after = zero
    for k in range(N):  # exclusive suffix sums, in place
        j = N - 1 - k
        term = g_column[j]
        g_column[j] = after
        after += term
    for j in range(N):
        g_sorted[j] = (g_column[j] / sorted_usage[j] - g_sorted[j] * before[j]) * (one - floor)
    for j in range(N):
        g_row[order[j]] = g_sorted[j]

    # usage  u = v o psi,  v = u_{t-1} + w_{t-1} - u_{t-1} o w_{t-1}:
    #   dv = du o psi,  dpsi = du o v,
    #   du_{t-1} = dv o (1 - w_{t-1}),  dw_{t-1} = dv o (1 - u_{t-1})
    for n in range(N):
        du = dusage[n] + g_row[n]
        dv = du * retention[n]
        g_column[n] = du * (usage_prev[n] + write_prev[n] - usage_prev[n] * write_prev[n])
        dusage[n] = dv * (one - write_prev[n])
        dwrite[n] = dv * (one - usage_prev[n])

    # retention  psi = prod_i q_i,  q_i = 1 - f_i w^{r,i}_{t-1}:
    #   dq_i = dpsi prod_{i' != i} q_i',  df_i = -sum_n dq_i w^{r,i}_{t-1},
    #   dw^{r,i}_{t-1} += -dq_i f_i
    # (the product over the other heads taken directly, not psi / q_i, which can be 0/0);
    # free gates  f = sigma(raw):  draw = df f (1 - f)
    for r in range(R):
        for n in range(N):
            g_row[n] = g_column[n]  # dq_r, once the other heads' factors are in
        for s in range(R):
            if s != r:
                f = free[s]
                for n in range(N):
                    g_row[n] *= one - f * read_prev[s, n]
        f = free[r]
        dfree = zero
        for n in range(N):
            dfree -= g_row[n] * read_prev[r, n]
            dread[r, n] = g_read_prev[r, n] - g_row[n] * f
        dinterface[g + M + r] = dfree * f * (one - f)

    # the clamp passes the gradient only inside [-clip, clip]
    for p in range(dinterface.shape[0]):
        if pre[p] < -clip or pre[p] > clip:
            dinterface[p] = zero


# ----------------------------------------------------------------------------------------------
# The sequence, by blocks of rows


@jit
def sequence_forward(
    R,
    clip,
    save,
    segment,
    block,
    x_gates,
    h0,
    reads0,
    link0,
    w_state,
    w_interface_t,
    b_interface,
    hs,
    reads,
    gates,
    link_work,
    c,
    memory,
    usage,
    link,
    precedence,
    read,
    write,
    row_norm,
    state_in,
    act,
    tanh_c,
    pre,
    retention,
    sorted_usage,
    order,
    before,
    allocation,
    similarity_w,
    key_norm_w,
    content_w,
    forward,
    backward,
    similarity_r,
    key_norm_r,
    content_r,
):
    """The DNC over a whole sequence.

    x_gates [T, B, G]: the inputs' share of the controller's pre-activations, bias included
    (fused_cell.input_gates); h0 [B, C], reads0 [B, R*M], link0 [B, N, N]: the initial
    controller output, read vectors and link matrix; w_state [K, R*M + C, G], w_interface_t
    [K, C, P], b_interface [K, P]. Writes hs [T, B, C] and reads [T, B, R*M]; gates [B, G] and
    link_work [>= 2, block, N, N] are scratch. The rest is the tape (`Tape`), its recurrent
    fields' slot 0 holding the initial state.

    The rows run in blocks of `block` (each within one seed), each block through all T steps.
    A row's link matrix goes back and forth between two matrices of link_work, except that when
    saving, the one before every segment-th step t > 0 is the checkpoint link[t // segment - 1]
    (the first written by the step before, the second read by the step)."""
    dtype = x_gates.dtype.type
    one = dtype(1.0)
    clip = dtype(clip)
    T, B, G = x_gates.shape
    C = h0.shape[1]
    K = w_state.shape[0]
    batch = B // K
    M, N = memory.shape[2], memory.shape[3]
    RM = R * M
    P = pre.shape[2]
    raw = np.empty(P, x_gates.dtype)
    strengths = np.empty(R + 1, x_gates.dtype)
    erase = np.empty(M, x_gates.dtype)
    free = np.empty(R, x_gates.dtype)
    modes = np.empty((R, 3), x_gates.dtype)

    for b in range(B):  # |M_0[n]|, and the allocation sort starts from location order
        for n in range(N):
            row_norm[0, b, n] = one - one
            order[0, b, n] = n
        for m in range(M):
            for n in range(N):
                row_norm[0, b, n] += memory[0, b, m, n] * memory[0, b, m, n]
        for n in range(N):
            row_norm[0, b, n] = np.sqrt(row_norm[0, b, n])

    for k in range(K):
        for lo in range(k * batch, (k + 1) * batch, block):
            hi = min(lo + block, (k + 1) * batch)
            for t in range(T):
                a = t if save else t % 2  # the state before the step
                z = t + 1 if save else (t + 1) % 2  # after it
                s = t if save else 0  # the step's intermediates
                if save and t > 0:
                    for b in range(lo, hi):
                        for n in range(N):
                            order[s, b, n] = order[s - 1, b, n]

                # the controller's recurrent input [r_{t-1}, h_{t-1}]
                for b in range(lo, hi):
                    for j in range(RM):
                        state_in[s, b, j] = reads0[b, j] if t == 0 else reads[t - 1, b, j]
                    for j in range(C):
                        state_in[s, b, RM + j] = h0[b, j] if t == 0 else hs[t - 1, b, j]
                # gates = x_gates_t + [r_{t-1}, h_{t-1}] W_state
                np.dot(state_in[s, lo:hi], w_state[k], gates[lo:hi])
                # LSTM cell  (i, f, o) = sigma(gates[:3C]), g = tanh(gates[3C:]),
                #            c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)
                for b in range(lo, hi):
                    for j in range(3 * C):
                        act[s, b, j] = sigmoid(gates[b, j] + x_gates[t, b, j])
                    for j in range(3 * C, G):
                        act[s, b, j] = tanh(gates[b, j] + x_gates[t, b, j])
                    for j in range(C):
                        cell = act[s, b, C + j] * c[a, b, j] + act[s, b, j] * act[s, b, 3 * C + j]
                        c[z, b, j] = cell
                        tanh_c[s, b, j] = tanh(cell)
                        hs[t, b, j] = act[s, b, 2 * C + j] * tanh_c[s, b, j]
                # interface  pre = h_t W_int^T + b
                np.dot(hs[t, lo:hi], w_interface_t[k], pre[s, lo:hi])
                for b in range(lo, hi):
                    for p in range(P):
                        pre[s, b, p] += b_interface[k, p]

                for b in range(lo, hi):
                    if t == 0:
                        link_prev = link0[b]
                    elif save and t % segment == 0:
                        link_prev = link[t // segment - 1, b]
                    else:
                        link_prev = link_work[t % 2, b - lo]
                    if save and (t + 1) % segment == 0 and t + 1 < T:
                        link_next = link[(t + 1) // segment - 1, b]
                    else:
                        link_next = link_work[(t + 1) % 2, b - lo]
                    allocation_gate, write_gate = activations(
                        pre[s, b], R, M, clip, raw, strengths, erase, free, modes
                    )
                    key_norm_w[s, b] = memory_forward(
                        R,
                        M,
                        raw,
                        strengths,
                        erase,
                        free,
                        modes,
                        allocation_gate,
                        write_gate,
                        memory[a, b],
                        memory[z, b],
                        usage[a, b],
                        usage[z, b],
                        link_prev,
                        link_next,
                        precedence[a, b],
                        precedence[z, b],
                        read[a, b],
                        read[z, b],
                        write[a, b],
                        write[z, b],
                        row_norm[a, b],
                        row_norm[z, b],
                        retention[s, b],
                        sorted_usage[s, b],
                        order[s, b],
                        before[s, b],
                        allocation[s, b],
                        similarity_w[s, b],
                        content_w[s, b],
                        forward[s, b],
                        backward[s, b],
                        similarity_r[s, b],
                        key_norm_r[s, b],
                        content_r[s, b],
                        reads[t, b],
                    )


@jit
def sequence_backward(
    R,
    clip,
    segment,
    block,
    dhs,
    dreads,
    link0,
    w_state_t,
    w_interface,
    dgates,
    dinterface,
    dstate,
    dc,
    dmemory,
    dusage,
    dlink,
    dprecedence,
    dread,
    dwrite,
    link_work,
    c,
    memory,
    usage,
    link,
    precedence,
    read,
    write,
    row_norm,
    state_in,
    act,
    tanh_c,
    pre,
    retention,
    sorted_usage,
    order,
    before,
    allocation,
    similarity_w,
    key_norm_w,
    content_w,
    forward,
    backward,
    similarity_r,
    key_norm_r,
    content_r,
):
    """The backward of sequence_forward over its saved tape, in reverse, by the same blocks of
    rows; segment by segment, it first remakes the block's link matrices L_t of the segment from
    their checkpoint (link0 for the first) into link_work [segment - 1, block, N, N].

    dhs [T, B, C], dreads [T, B, R*M]: the gradients of the outputs; w_state_t [K, G, R*M + C],
    w_interface [K, P, C]. Writes dgates [T, B, G] and dinterface [T, B, P], the gradients of
    the two linear layers' outputs. The carry, zero on the way in, holds the gradients of the
    initial state on the way out: dstate [B, R*M + C] (reads, then h), dc [B, C], dmemory
    [B, M, N] (transposed), dusage [B, N], dlink [B, N, N], dprecedence [B, N], dread [B, R, N],
    dwrite [B, N]."""
    dtype = dhs.dtype.type
    one = dtype(1.0)
    clip = dtype(clip)
    T, B, C = dhs.shape
    K = w_state_t.shape[0]
    batch = B // K
    M, N = memory.shape[2], memory.shape[3]
    RM = R * M
    P = pre.shape[2]
    raw = np.empty(P, dhs.dtype)
    strengths = np.empty(R + 1, dhs.dtype)
    erase = np.empty(M, dhs.dtype)
    free = np.empty(R, dhs.dtype)
    modes = np.empty((R, 3), dhs.dtype)
    dreads_row = np.empty(RM, dhs.dtype)
    g_read = np.empty((R, N), dhs.dtype)
    g_read_prev = np.empty((R, N), dhs.dtype)
    g_backward = np.empty((R, N), dhs.dtype)
    g_forward = np.empty((R, N), dhs.dtype)
    g_content = np.empty((R, N), dhs.dtype)
    g_write = np.empty(N, dhs.dtype)
    g_row = np.empty(N, dhs.dtype)
    g_column = np.empty(N, dhs.dtype)
    g_link = np.empty(N, dhs.dtype)
    g_allocation = np.empty(N, dhs.dtype)
    g_sorted = np.empty(N, dhs.dtype)
    dh = np.empty((B, C), dhs.dtype)

    for k in range(K):
        for lo in range(k * batch, (k + 1) * batch, block):
            hi = min(lo + block, (k + 1) * batch)
            for start in range((T - 1) // segment * segment, -1, -segment):
                end = min(start + segment, T)
                # remake L_t for t in (start, end) from the checkpoint L_start
                for b in range(lo, hi):
                    for t in range(start + 1, end):
                        if t - 1 > start:
                            link_prev = link_work[t - 2 - start, b - lo]
                        elif start == 0:
                            link_prev = link0[b]
                        else:
                            link_prev = link[start // segment - 1, b]
                        link_update(
                            link_prev,
                            precedence[t - 1, b],
                            write[t, b],
                            link_work[t - 1 - start, b - lo],
                        )
                for t in range(end - 1, start - 1, -1):
                    for b in range(lo, hi):
                        if t > start:
                            link_prev = link_work[t - 1 - start, b - lo]
                        elif start == 0:
                            link_prev = link0[b]
                        else:
                            link_prev = link[start // segment - 1, b]
                        for j in range(RM):  # the read vectors' gradient: next step's and output's
                            dreads_row[j] = dstate[b, j] + dreads[t, b, j]
                        allocation_gate, write_gate = activations(
                            pre[t, b], R, M, clip, raw, strengths, erase, free, modes
                        )
                        memory_backward(
                            R,
                            M,
                            pre[t, b],
                            clip,
                            raw,
                            strengths,
                            erase,
                            free,
                            modes,
                            allocation_gate,
                            write_gate,
                            memory[t, b],
                            memory[t + 1, b],
                            usage[t, b],
                            link_prev,
                            precedence[t, b],
                            read[t, b],
                            read[t + 1, b],
                            write[t, b],
                            write[t + 1, b],
                            row_norm[t, b],
                            row_norm[t + 1, b],
                            retention[t, b],
                            sorted_usage[t, b],
                            order[t, b],
                            before[t, b],
                            allocation[t, b],
                            similarity_w[t, b],
                            key_norm_w[t, b],
                            content_w[t, b],
                            forward[t, b],
                            backward[t, b],
                            similarity_r[t, b],
                            key_norm_r[t, b],
                            content_r[t, b],
                            dreads_row,
                            dmemory[b],
                            dusage[b],
                            dlink[b],
                            dprecedence[b],
                            dread[b],
                            dwrite[b],
                            dinterface[t, b],
                            g_read,
                            g_read_prev,
                            g_backward,
                            g_forward,
                            g_content,
                            g_write,
                            g_row,
                            g_column,
                            g_link,
                            g_allocation,
                            g_sorted,
                        )
                    # interface  dh_t = dinterface W_int (+ the next step's and the output's)
                    np.dot(dinterface[t, lo:hi], w_interface[k], dh[lo:hi])
                    # LSTM cell  dc~ = dc_t + dh_t o (1 - tanh(c_t)^2),
                    #   d(i, f, o) = (dc~ g, dc~ c_{t-1}, dh_t tanh(c_t)) o sigma (1 - sigma),
                    #   dg = dc~ i (1 - g^2),  dc_{t-1} = dc~ f
                    for b in range(lo, hi):
                        for j in range(C):
                            d = dh[b, j] + dstate[b, RM + j] + dhs[t, b, j]
                            i_gate = act[t, b, j]
                            f_gate = act[t, b, C + j]
                            o_gate = act[t, b, 2 * C + j]
                            cand = act[t, b, 3 * C + j]
                            tc = tanh_c[t, b, j]
                            dcell = dc[b, j] + d * o_gate * (one - tc * tc)
                            dgates[t, b, j] = dcell * cand * i_gate * (one - i_gate)
                            dgates[t, b, C + j] = dcell * c[t, b, j] * f_gate * (one - f_gate)
                            dgates[t, b, 2 * C + j] = d * tc * o_gate * (one - o_gate)
                            dgates[t, b, 3 * C + j] = dcell * i_gate * (one - cand * cand)
                            dc[b, j] = dcell * f_gate
                    # controller  d[r_{t-1}, h_{t-1}] = dgates W_state^T
                    np.dot(dgates[t, lo:hi], w_state_t[k], dstate[lo:hi])


# ----------------------------------------------------------------------------------------------
# The torch side


class Tape(NamedTuple):
    """What sequence_forward keeps for sequence_backward (numpy arrays, one dtype but `order`).
    When saving: recurrent fields [T + 1, B, ...] (slot 0: the initial state), per-step fields
    [T, B, ...], link checkpoints [ceil(T / segment) - 1, B, N, N]; when not: recurrent fields
    [2, B, ...] (used in turn), per-step fields [1, B, ...], no checkpoints."""

    link_work: np.ndarray  # a block's link matrices [max(2, segment - 1) or 2, block, N, N]
    c: np.ndarray  # controller cell [., B, C]
    memory: np.ndarray  # transposed [., B, M, N]
    usage: np.ndarray  # [., B, N]
    link: np.ndarray  # checkpoints L_t, t = segment, 2 segment, ... [., B, N, N]
    precedence: np.ndarray  # [., B, N]
    read: np.ndarray  # read weightings [., B, R, N]
    write: np.ndarray  # write weighting [., B, N]
    row_norm: np.ndarray  # the memory's row norms [., B, N]
    state_in: np.ndarray  # the controller's recurrent input [r_{t-1}, h_{t-1}] [., B, R*M + C]
    act: np.ndarray  # LSTM gates: sigmoid (i, f, o), tanh g [., B, 4C]
    tanh_c: np.ndarray  # [., B, C]
    pre: np.ndarray  # the interface before the clamp [., B, P]
    retention: np.ndarray  # psi [., B, N]
    sorted_usage: np.ndarray  # the floored usage sorted ascending [., B, N]
    order: np.ndarray  # the locations in that order (intp) [., B, N]
    before: np.ndarray  # exclusive products of the sorted usage [., B, N]
    allocation: np.ndarray  # [., B, N]
    similarity_w: np.ndarray  # the write key's cosine similarity [., B, N]
    key_norm_w: np.ndarray  # [., B]
    content_w: np.ndarray  # the write content weighting [., B, N]
    forward: np.ndarray  # directional weightings [., B, R, N]
    backward: np.ndarray
    similarity_r: np.ndarray  # the read keys' cosine similarity [., B, R, N]
    key_norm_r: np.ndarray  # [., B, R]
    content_r: np.ndarray  # read content weightings [., B, R, N]


# A block's link matrices of one segment (segment x block x N x N, with the gradient's) should stay
# in a core's L2 cache (1.25 MB here) beside the weights: LINK_CACHE bytes.
LINK_CACHE = 1 << 19
BLOCK = 2  # rows per block, at most


def blocking(batch: int, N: int, itemsize: int) -> tuple[int, int]:
    """(block, segment): rows per block (at most `batch`, the rows of one seed) and steps per
    link checkpoint, so that a block's segment of link matrices fits LINK_CACHE."""
    block = max(1, min(batch, BLOCK))
    return block, max(2, LINK_CACHE // (block * N * N * itemsize))


def tape_shapes(
    B: int, C: int, R: int, N: int, M: int, T: int, save: bool, block: int, segment: int
) -> dict:
    """Each Tape field's shape (see Tape)."""
    P = (R + 3) * M + 5 * R + 3
    steps, slots, checkpoints = (T, T + 1, max(0, -(-T // segment) - 1)) if save else (1, 2, 0)
    per_row = {
        "c": (slots, C),
        "memory": (slots, M, N),
        "usage": (slots, N),
        "link": (checkpoints, N, N),
        "precedence": (slots, N),
        "read": (slots, R, N),
        "write": (slots, N),
        "row_norm": (slots, N),
        "state_in": (steps, R * M + C),
        "act": (steps, 4 * C),
        "tanh_c": (steps, C),
        "pre": (steps, P),
        "retention": (steps, N),
        "sorted_usage": (steps, N),
        "order": (steps, N),
        "before": (steps, N),
        "allocation": (steps, N),
        "similarity_w": (steps, N),
        "key_norm_w": (steps,),
        "content_w": (steps, N),
        "forward": (steps, R, N),
        "backward": (steps, R, N),
        "similarity_r": (steps, R, N),
        "key_norm_r": (steps, R),
        "content_r": (steps, R, N),
    }
    work = (max(2, segment - 1) if save else 2, block, N, N)
    return {"link_work": work, **{name: (s[0], B, *s[1:]) for name, s in per_row.items()}}


def new_tape(layout, T: int, state: DNCState, dtype, save: bool) -> tuple[Tape, int, int]:
    """(a Tape for T steps from `state` (numpy arrays), its block and segment): slot 0 of its
    recurrent fields set to the state, the memory transposed. A spare tape of the same shapes
    (`release`) if there is one, else a fresh one."""
    B, C = state.h.shape
    N = layout.memory
    block, segment = blocking(B // layout.seeds, N, np.dtype(dtype).itemsize)
    shapes = tape_shapes(B, C, layout.read_heads, N, layout.width, T, save, block, segment)
    key = (*shapes.values(), np.dtype(dtype))
    spare = [i for i, tape in enumerate(SPARE) if tape_key(tape) == key]
    if spare:
        tape = SPARE.pop(spare[-1])
    else:
        tape = Tape(
            *(
                np.empty(shape, np.intp if name == "order" else dtype)
                for name, shape in shapes.items()
            )
        )
    tape.c[0], tape.memory[0] = state.c, state.memory.transpose(0, 2, 1)
    tape.usage[0], tape.precedence[0] = state.usage, state.precedence
    tape.read[0], tape.write[0] = state.read_weights, state.write_weights
    return tape, block, segment


def tape_key(tape: Tape) -> tuple:
    return (*(field.shape for field in tape), tape.c.dtype)


# Tapes no longer in use, oldest first, at most SPARES: a fresh array's pages are faulted in and
# zeroed by the OS on first touch (glibc maps big blocks afresh each time), which cost a fifth of
# a forward pass when the tape kept every step's link matrix.
SPARE: list = []
SPARES = 4


def release(tape: Tape) -> None:
    """Keep `tape` for reuse by new_tape (its contents are overwritten before they are read)."""
    SPARE.append(tape)
    del SPARE[:-SPARES]


def as_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A contiguous numpy view (or copy) of a tensor, out of autograd."""
    return tensor.detach().contiguous().numpy()


class Forward(NamedTuple):
    """What forward_pass returns."""

    hs: torch.Tensor  # [T, B, C]
    reads: torch.Tensor  # [T, B, R*M]
    tape: Tape
    block: int
    segment: int
    link0: np.ndarray  # the initial link matrix [B, N, N]
    w_state_t: np.ndarray  # [K, G, R*M + C]
    w_interface: np.ndarray  # [K, P, C]


def forward_pass(layout, inputs: torch.Tensor, state: DNCState, weights: Weights, save: bool):
    """The kernel's forward over inputs [T, B, I] from `state` (tensors), as a `Forward`."""
    kernels_on_disk("dnc")
    K, I = layout.seeds, layout.inputs
    with torch.no_grad():
        x_gates = as_numpy(
            input_gates(
                K, inputs, weights.controller.transpose(-2, -1)[..., :I, :], weights.controller_bias
            )
        )
    dtype = x_gates.dtype
    T, B = inputs.shape[:2]
    C, R, M = layout.controller, layout.read_heads, layout.width
    numpy_state = DNCState._make(as_numpy(field) for field in state)
    tape, block, segment = new_tape(layout, T, numpy_state, dtype, save)
    # the weights with a leading seed axis K, as the kernel takes them
    controller = weights.controller.detach().reshape(K, *weights.controller.shape[-2:])
    interface = weights.interface.detach().reshape(K, *weights.interface.shape[-2:])
    hs, reads = np.empty((T, B, C), dtype), np.empty((T, B, R * M), dtype)
    sequence_forward(
        R,
        float(layout.clip),
        save,
        segment,
        block,
        x_gates,
        numpy_state.h,
        numpy_state.reads.reshape(B, R * M),
        numpy_state.link,
        as_numpy(controller[..., I:].transpose(1, 2)),
        as_numpy(interface.transpose(1, 2)),
        as_numpy(weights.interface_bias.detach().reshape(K, -1)),
        hs,
        reads,
        np.empty((B, 4 * C), dtype),
        *tape,
    )
    return Forward(
        torch.from_numpy(hs),
        torch.from_numpy(reads),
        tape,
        block,
        segment,
        numpy_state.link,
        as_numpy(controller[..., I:]),
        as_numpy(interface),
    )


class DNCSequence(torch.autograd.Function):
    """(layout, inputs [T, B, I], *flatten(operands)) -> (hs [T, B, C], reads [T, B, R*M]): the
    DNC's sequence by the kernel, in fused_model's calling convention for kernels. operands:
    DNC.fused_operands(B), or K seeds' (fused_operands(batch, tensors, K)) with layout.seeds =
    K. Its backward gives the inputs, every state field and every weight a gradient."""

    @staticmethod
    def forward(ctx, layout, inputs, *tensors):
        rest = iter(tensors)
        state, weights = take(DNCState, rest), take(Weights, rest)
        out = forward_pass(layout, inputs, state, weights, save=True)
        ctx.layout, ctx.out = layout, out._replace(hs=None, reads=None)
        weakref.finalize(ctx, release, out.tape)  # reused once the graph is gone
        ctx.save_for_backward(inputs, weights.controller, out.hs)
        ctx.set_materialize_grads(False)
        return out.hs, out.reads

    @staticmethod
    def backward(ctx, dhs, dreads):
        layout, out = ctx.layout, ctx.out
        tape = out.tape
        inputs, controller, hs = ctx.saved_tensors
        T, B = inputs.shape[:2]
        C, R, N, M = layout.controller, layout.read_heads, layout.memory, layout.width
        dtype = tape.pre.dtype
        dhs = np.zeros((T, B, C), dtype) if dhs is None else as_numpy(dhs)
        dreads = np.zeros((T, B, R * M), dtype) if dreads is None else as_numpy(dreads)
        dgates = np.empty((T, B, 4 * C), dtype)
        dinterface = np.empty((T, B, tape.pre.shape[-1]), dtype)
        dstate = np.zeros((B, R * M + C), dtype)  # reads, then h
        carry = DNCState(
            h=dstate[:, R * M :],
            c=np.zeros((B, C), dtype),
            memory=np.zeros((B, M, N), dtype),  # transposed
            usage=np.zeros((B, N), dtype),
            link=np.zeros((B, N, N), dtype),
            precedence=np.zeros((B, N), dtype),
            read_weights=np.zeros((B, R, N), dtype),
            write_weights=np.zeros((B, N), dtype),
            reads=dstate[:, : R * M].reshape(B, R, M),
        )
        sequence_backward(
            R, float(layout.clip), out.segment, out.block, dhs, dreads, out.link0, out.w_state_t,
            out.w_interface, dgates, dinterface, dstate, *carry[1:-1], *tape,
        )  # fmt: skip
        dx, *dweights = layer_grads(
            layout.seeds,
            inputs,
            torch.from_numpy(tape.state_in),
            hs,
            torch.from_numpy(dgates).view(T * B, -1),
            torch.from_numpy(dinterface).view(T * B, -1),
            controller.detach(),
            ctx.needs_input_grad[1],
        )
        carry = carry._replace(memory=carry.memory.transpose(0, 2, 1))
        dinitial = (torch.from_numpy(np.ascontiguousarray(field)) for field in carry)
        return (None, dx, *dinitial, *dweights)


def dnc_sequence(layout, inputs: torch.Tensor, operands: Operands):
    """(hs [T, B, C], reads [T, B, R*M]) of the DNC over inputs [T, B, I] from `operands`: by
    DNCSequence where a gradient is wanted, else (evaluation) by the forward alone, keeping no
    tape."""
    tensors = flatten(operands)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (inputs, *tensors)):
        return DNCSequence.apply(layout, inputs, *tensors)
    out = forward_pass(layout, inputs, operands.state, operands.weights, save=False)
    release(out.tape)
    return out.hs, out.reads
