"""The fused-sequence engine: a memory model's whole sequence as one autograd Function, run in
chunks of time steps forward and walked back in reverse with a hand-derived backward.

Why: at the NTM paper's sizes a memory model's step is 60-80 tiny tensor ops, and autograd's
bookkeeping for them (recording each, replaying ~100 more in backward), not their arithmetic, is
most of a training step on a 2-core CPU. The engine runs a model's step with autograd off, keeps
what its backward needs, walks the sequence back with the model's hand-derived step backward,
and sums the two linear layers' weight gradients over all time steps in one matmul each.

A memory model gives the engine only its step math, as `Steps` (and, as a FusedModel of
models.fused_model, where its sequence starts: `fused_operands`):

    forward(layout, x_gates, state, weights, constants) -> (new state, saved)
    backward(layout, carry, saved, previous, weights, constants) -> (carry before the step,
                                                                      LayerGrads)
    state      NamedTuple of the recurrent state [B, ...]; has h [B, C] and reads [B, R, M],
               the outputs
    saved      NamedTuple of what forward keeps for backward; has state_in, the controller's
               recurrent input, and names what it keeps of the new state as `state` does
    previous   NamedTuple of what backward needs of the state before its step, each field read by
               name from the previous step's `saved` (or, for the first step, the initial state)
    constants  NamedTuple of tensors the steps read and nothing differentiates (NoConstants if none)

`carry` is a `state` of gradients: those of the step's new state on the way in (the output
layer's share of h and reads included), of the state before it on the way out. The controller
is one linear layer on [x_t, recurrent inputs] and the interface (the NTM's heads, the DNC's
interface) one on h_t, `Weights`; rows are seed-major when K seeds run as one pass
(layout.seeds = K, weights [K, ...]: models.fused_cell). Every NamedTuple crosses the autograd
boundary flattened in its own field order (`flatten`, `take`), since save_for_backward and the
gradients take tensors only. The Function follows torch.func's rules (setup_context, every saved
intermediate an output, generate_vmap_rule), so vmap works too.
"""

from __future__ import annotations

import functools
import itertools
import types
from typing import Callable, Iterator, NamedTuple

import torch

from models.fused_cell import input_gates, layer_grads


class NoConstants(NamedTuple):
    """The constants of a model whose steps read none (the DNC)."""


class Steps(NamedTuple):
    """A memory model's step math, what the engine runs (see the module docstring)."""

    name: str  # names its compiled chunk functions (see `own_code`)
    forward: Callable
    backward: Callable
    state: type
    saved: type
    previous: type
    constants: type = NoConstants


class Weights(NamedTuple):
    """The two linear layers as the sequence takes them ([K, ...] each with K seeds)."""

    controller: torch.Tensor  # [G, I + recurrent inputs], G = 4C (LSTM) or C
    controller_bias: torch.Tensor  # [G]
    interface: torch.Tensor  # [P, C], rows in the model's fused layout
    interface_bias: torch.Tensor  # [P]


class StepWeights(NamedTuple):
    """The weights a step uses, transposed for x @ w (the inputs' share of the controller is
    applied to the whole sequence at once, before the steps: fused_cell.input_gates)."""

    state: torch.Tensor  # [(K,) recurrent inputs, G]
    interface: torch.Tensor  # [(K,) C, P]
    interface_bias: torch.Tensor  # [P], or [K, 1, P] per seed


class LayerGrads(NamedTuple):
    """A step's gradients of the two linear layers' outputs; the engine sums their weight
    gradients over all steps at the end."""

    controller: torch.Tensor  # [B, G]
    interface: torch.Tensor  # [B, P]


class Operands(NamedTuple):
    """What a sequence starts from, besides its inputs."""

    state: NamedTuple  # the initial state (a `Steps.state`)
    weights: Weights
    constants: NamedTuple  # a `Steps.constants`


class Chunk(NamedTuple):
    """What forward_chunk returns."""

    state: NamedTuple  # the state after the chunk
    hs: torch.Tensor  # the controller outputs [chunk, B, C]
    reads: torch.Tensor  # the read vectors [chunk, B, R*M]
    saved: NamedTuple | None  # a `Steps.saved` as `keep` keeps it; None unless saving


def flatten(operands: Operands) -> tuple:
    """The tensors of `operands`, each NamedTuple in its own field order (the Function's inputs)."""
    return (*operands.state, *operands.weights, *operands.constants)


def take(kind: type, rest: Iterator[torch.Tensor]):
    """The next len(kind._fields) tensors of `rest` as a `kind`: the inverse of flattening."""
    return kind._make(itertools.islice(rest, len(kind._fields)))


def previous_of(steps: Steps, source, last: bool = False):
    """What a step's backward needs of the state before it, read by field name from `source`: the
    previous step's saved values, the initial state, or (`last`) a chunk's stacked saved values
    (`keep`), at its last step."""
    return steps.previous._make(
        getattr(source, name)[-1] if last else getattr(source, name)
        for name in steps.previous._fields
    )


def step_weights(layout, weights: Weights) -> StepWeights:
    bias = weights.interface_bias.unsqueeze(1) if layout.seeds > 1 else weights.interface_bias
    return StepWeights(
        weights.controller.transpose(-2, -1)[..., layout.inputs :, :],
        weights.interface.transpose(-2, -1),
        bias,
    )


def forward_chunk(
    steps: Steps, layout, x_gates, state, weights: StepWeights, constants, save: bool = True
) -> Chunk:
    """steps.forward over the time steps of x_gates [chunk, B, G] (the inputs' share of the
    controller's pre-activations) from `state`. The unit that `compiled_kernels` compiles."""
    hs, reads, saved = [], [], []
    for x_t in x_gates.unbind(0):
        state, step_saved = steps.forward(layout, x_t, state, weights, constants)
        hs.append(state.h)
        reads.append(state.reads.flatten(1))
        if save:
            saved.append(step_saved)
    # stacked inside the graph: two outputs a chunk, not two a step (each output is a buffer the
    # compiled wrapper allocates: 11 fewer a chunk for the NTM at the paper's size)
    return Chunk(state, stacked(hs), stacked(reads), keep(steps, saved) if save else None)


def stacked(tensors: list) -> torch.Tensor:
    """A chunk's per-step tensors stacked [chunk, ...]; a one-step chunk's as a view, no copy."""
    return torch.stack(tensors) if len(tensors) > 1 else tensors[0].unsqueeze(0)


def keep(steps: Steps, saved: list):
    """A chunk's saved values as the sequence keeps them: a one-step chunk's as its step left them
    (eager: no view per field to make here and undo in backward, ~40 us a step at the paper's
    size), a longer chunk's each stacked over its steps (compiled: one tensor per field)."""
    return (
        saved[0]
        if len(saved) == 1
        else steps.saved._make(torch.stack(field) for field in zip(*saved))
    )


def unkeep(steps: Steps, kept, length: int) -> list:
    """The inverse of `keep`: the saved values of each of a chunk's `length` steps."""
    if length == 1:
        return [kept]
    return [steps.saved._make(fields) for fields in zip(*(field.unbind(0) for field in kept))]


def backward_chunk(
    steps: Steps, layout, carry, saved, previous, dhs, dreads, weights: StepWeights, constants
):
    """steps.backward over a chunk in reverse. saved: the chunk's saved values (`keep`);
    previous: what its first step needs of the state before it; dhs [chunk, B, C], dreads
    [chunk, B, R*M]: the output layer's gradients. Returns (carry before the chunk, LayerGrads
    [chunk * B, ...] in time order)."""
    step_saved = unkeep(steps, saved, len(dhs))
    grads = []
    for k in reversed(range(len(step_saved))):
        carry = carry._replace(
            h=carry.h + dhs[k], reads=carry.reads + dreads[k].view(carry.reads.shape)
        )
        before = previous_of(steps, step_saved[k - 1]) if k else previous
        carry, step_grads = steps.backward(layout, carry, step_saved[k], before, weights, constants)
        grads.append(step_grads)
    return carry, LayerGrads(*(torch.cat(layer[::-1]) for layer in zip(*grads)))


class Kernels(NamedTuple):
    """The chunk functions Sequence runs, and the time steps per chunk: 1 eager, where a step's
    saved values are then kept as the step left them, with no copy into stacked tensors (at
    batch 16 the DNC's stacked link matrices alone cost 14% of a profiled training step)."""

    forward: Callable = forward_chunk
    backward: Callable = backward_chunk
    chunk: int = 1


# Dynamo checks, before every call of a compiled chunk, each module-level name the chunk read
# while it was traced (torch.cat, ntm_memory.read, EPS, the NamedTuple classes: 49 of the NTM
# forward chunk's 79 guards, 44 of its backward's 131). Nothing rebinds those names while a model
# runs, so their guards are skipped; the guards on the arguments (tensors' shapes and strides, the
# layout's numbers, the NamedTuples' types) and on grad mode and the rest of torch's global state
# stay. At batch 1 that was 3% of a compiled training iteration (NTM 0.968, DNC 0.965 against
# keeping them; benchmarks.speed_suite.versus, 20 rounds). A model that brings its own step pair
# gets the same: its steps must not read module-level names that change while it runs. An older
# torch without guard filters (the project allows 2.3) keeps every guard: the same graphs and
# results, each call a little slower.
SKIP_GLOBALS = getattr(torch.compiler, "skip_guard_on_globals_unsafe", None)
CHUNK_OPTIONS = {"guard_filter_fn": SKIP_GLOBALS} if SKIP_GLOBALS is not None else {}


def compiled_kernels(steps: Steps, chunk: int) -> Kernels:
    """The chunk functions torch.compile'd for `chunk` steps each, one graph per chunk: no
    autograd graph to trace, so no autograd wrappers per call (see SequenceModel.compile_step
    for why chunks), and no guards on globals (CHUNK_OPTIONS)."""
    return Kernels(
        torch.compile(own_code(forward_chunk, steps.name), dynamic=False, options=CHUNK_OPTIONS),
        torch.compile(own_code(backward_chunk, steps.name), dynamic=False, options=CHUNK_OPTIONS),
        chunk,
    )


@functools.cache
def own_code(function: Callable, owner: str) -> Callable:
    """`function` with a code object of its own per model, named <function>_<owner>: torch.compile
    keeps its compiled graphs and its recompile limit (8) per code object, so one model's runs in
    a worker process neither evict nor use up another's, as when each had its own chunk code."""
    code = function.__code__.replace(co_name=f"{function.__name__}_{owner}")
    copy = types.FunctionType(
        code, function.__globals__, code.co_name, function.__defaults__, function.__closure__
    )
    copy.__qualname__, copy.__doc__ = code.co_name, function.__doc__
    return copy


class Run(NamedTuple):
    """What `run` returns."""

    hs: torch.Tensor  # controller outputs [T, B, C]
    reads: torch.Tensor  # read vectors [T, B, R*M]
    saved: list  # each chunk's `Steps.saved` (`keep`) in turn; empty unless saving


def run(steps: Steps, layout, kernels: Kernels, inputs, operands: Operands, save: bool) -> Run:
    """The forward pass over inputs [T, B, I] (T a multiple of the kernels' chunk)."""
    weights = operands.weights
    x_gates = input_gates(
        layout.seeds,
        inputs,
        weights.controller.transpose(-2, -1)[..., : layout.inputs, :],
        weights.controller_bias,
    )
    state, per_step, hs, reads, saved = operands.state, step_weights(layout, weights), [], [], []
    for x_chunk in x_gates.split(kernels.chunk):
        chunk = kernels.forward(steps, layout, x_chunk, state, per_step, operands.constants, save)
        # not kept past the next chunk: without saving, each state is freed in turn
        state = chunk.state
        hs.append(chunk.hs)
        reads.append(chunk.reads)
        if save:
            saved.append(chunk.saved)
    return Run(torch.cat(hs), torch.cat(reads), saved)  # one copy each


class Sequence(torch.autograd.Function):
    """(steps, layout, kernels, inputs [T, B, I], *flatten(operands)) -> (hs, reads, *saved),
    the saved values flattened chunk by chunk (marked non-differentiable: outputs only so that
    torch.func's rules hold)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(steps, layout, kernels, inputs, *tensors):
        rest = iter(tensors)
        operands = Operands(
            take(steps.state, rest), take(Weights, rest), take(steps.constants, rest)
        )
        out = run(steps, layout, kernels, inputs, operands, True)
        # autograd's rule: an input saved as is (the NTM's first memory and weightings) leaves as a
        # view
        given = {id(tensor) for tensor in tensors}
        saved = (
            field.view_as(field) if id(field) in given else field
            for chunk in out.saved
            for field in chunk
        )
        return (out.hs, out.reads, *saved)

    @staticmethod
    def setup_context(ctx, inputs, output):
        steps, layout, kernels, *tensors = inputs
        ctx.steps, ctx.layout, ctx.kernels = steps, layout, kernels
        ctx.mark_non_differentiable(*output[2:])
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*tensors, *output)

    @staticmethod
    def backward(ctx, dhs, dreads, *_):
        steps, layout, kernels = ctx.steps, ctx.layout, ctx.kernels
        rest = iter(ctx.saved_tensors)
        x = next(rest)
        state, weights, constants = (
            take(steps.state, rest),
            take(Weights, rest),
            take(steps.constants, rest),
        )
        hs, reads = next(rest), next(rest)
        chunks = [take(steps.saved, rest) for _ in range(0, len(hs), kernels.chunk)]
        dhs = (torch.zeros_like(hs) if dhs is None else dhs).split(kernels.chunk)
        dreads = (torch.zeros_like(reads) if dreads is None else dreads).split(kernels.chunk)
        per_step = step_weights(layout, weights)
        carry, grads = steps.state._make(t.new_zeros(t.shape) for t in state), []
        for n in reversed(range(len(chunks))):
            previous = (
                previous_of(steps, chunks[n - 1], last=kernels.chunk > 1)
                if n
                else previous_of(steps, state)
            )
            carry, chunk_grads = kernels.backward(
                steps, layout, carry, chunks[n], previous, dhs[n], dreads[n], per_step, constants
            )
            grads.append(chunk_grads)
        # [T * B, ...], in time order
        dgates, dinterface = (torch.cat(layer[::-1]) for layer in zip(*grads))
        # [T, B, ...]
        state_in = torch.cat([chunk.state_in for chunk in chunks]).view(*hs.shape[:2], -1)
        # inputs: after steps, layout, kernels
        dx, *dweights = layer_grads(
            layout.seeds,
            x,
            state_in,
            hs,
            dgates,
            dinterface,
            weights.controller,
            ctx.needs_input_grad[3],
        )
        return (None, None, None, dx, *carry, *dweights, *(None for _ in constants))
