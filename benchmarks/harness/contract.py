"""The contract a model and a task are held to before anything trains, checked on one small batch.

The planner builds each (model, task) pair once (benchmarks/harness/plan.py, check_buildable) and
hands both here. A plugin or a new built-in that breaks the contract then stops the suite with one
line naming it and what is wrong, before a store is written, instead of failing (or, worse, training
quietly wrong) inside a worker:

    task.input_size, task.output_size  positive integers
    task.sample(2, generator)          a Batch: inputs [T, 2, I], targets [T, 2, O], mask [T, 2]
    model(inputs)                      logits [T, 2, O], a floating tensor
    model(inputs, trace=True)          with has_memory: (logits, read and write weightings
                                       [T, 2, heads, memory_size]), an int memory_size

A batch-first model ([B, T, O]) fails the last line whenever B != T, which training alone would
only catch when the loss's shapes disagree. With train.compile on, a model that defines `step`
and keeps SequenceModel's compile_step must run its time loop through `self.unroll`: that is
where the compiled chunks are used, and a forward that loops over `self.step` itself would train
eager while its runs say compiled.
"""

from __future__ import annotations

import torch

from ntm_bench.benchmarks.process.threads import intra_op_threads
from ntm_bench.models.base import CompiledSteps, SequenceModel
from ntm_bench.tasks.base import Batch, Task

PROBE_BATCH = 2  # sequences in the probe batch; 2, so a batch-first output cannot pass by chance
PROBE_SEED = 0  # the probe's own generator: nothing global is drawn from
# The data one run holds at once (a training batch, the validation set, one evaluation point's
# sequences: inputs, targets and mask in float32) is refused above this; past it a value is a
# typo that would fail as an allocation error inside a worker, or swap the machine.
MAX_DATA_BYTES = 2 * 2**30


class ContractError(ValueError):
    """A model or task that does not fit the contract; the message says what is wrong."""


def check_task(task: Task) -> Batch:
    """The task's probe batch, after checking its sizes and the batch's shapes."""
    try:
        sizes = (task.input_size, task.output_size)
    except AttributeError as error:
        raise ContractError(f"the task sets no {error.name} (Task subclasses set both)") from None
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
        raise ContractError(
            f"input_size and output_size must be positive integers, got {sizes[0]!r}, {sizes[1]!r}"
        )
    # The smallest training sizes keep the probe short (copy: 3 time steps).
    smallest = {axis: task.min_size(axis) for axis in task.axes if task.min_size(axis)}
    batch = task.sample(PROBE_BATCH, torch.Generator().manual_seed(PROBE_SEED), **smallest)
    if not isinstance(batch, Batch):
        raise ContractError(f"sample returned {type(batch).__name__}, not a tasks.base.Batch")
    inputs = tuple(batch.inputs.shape)
    if len(inputs) != 3 or inputs[1:] != (PROBE_BATCH, task.input_size):
        raise ContractError(
            f"sample({PROBE_BATCH}) returned inputs of shape {list(inputs)}, expected "
            f"[T, {PROBE_BATCH}, {task.input_size}] (time-major [T, B, I])"
        )
    steps = inputs[0]
    for name, shape in (
        ("targets", (steps, PROBE_BATCH, task.output_size)),
        ("mask", (steps, PROBE_BATCH)),
    ):
        got = tuple(getattr(batch, name).shape)
        if got != shape:
            raise ContractError(
                f"sample({PROBE_BATCH}) returned {name} of shape {list(got)} beside inputs of "
                f"shape {list(inputs)}, expected {list(shape)} ([T, B, O] and [T, B])"
            )
    return batch


def check_data(task: Task, batch_size: int, eval_size: int, points: list[dict]) -> None:
    """Refuse a batch size, validation size or evaluation point whose data would exceed
    MAX_DATA_BYTES, measured on one sequence at the sizes' top (every axis at its largest
    training value, the point's own axes as given)."""
    top = {axis: task.max_size(axis) for axis in task.axes if task.max_size(axis)}
    cases = [("train.batch_size", batch_size, top), ("train.eval_size", eval_size, top)]
    cases += [
        (f"train.eval_size at {','.join(f'{k}={v}' for k, v in sizes.items())}", eval_size, sizes)
        for sizes in points
    ]
    width = task.input_size + task.output_size + 1  # inputs, targets and the mask
    for what, count, sizes in cases:
        one = task.sample(1, torch.Generator().manual_seed(PROBE_SEED), **{**top, **sizes})
        steps = one.inputs.shape[0]
        size = count * steps * width * 4
        if size > MAX_DATA_BYTES:
            raise ContractError(
                f"{what} = {count} sequences of up to {steps} steps would hold "
                f"{size / 2**30:.1f} GiB of data (at most {MAX_DATA_BYTES / 2**30:g} GiB)"
            )


def check_model(model: SequenceModel, batch: Batch, compile: bool) -> None:
    """Run `model` on the task's probe batch and check the logits' shape; with `compile`, check
    that the compiled chunks would be used (see the module docstring)."""
    spy = compile and model.has_step() and type(model).compile_step is SequenceModel.compile_step
    calls = []
    if spy:
        # What compile_step installs, minus the compiler: the same chunked path, counted.
        chunk = 1

        def counted(inputs, state):
            calls.append(len(inputs))
            return model.steps(inputs, state)

        model.compiled_steps = CompiledSteps(counted, chunk)
    try:
        # one thread: the planner runs beside training workers
        with torch.set_grad_enabled(spy), intra_op_threads(1):
            logits = model(batch.inputs)
    finally:
        if spy:
            model.compiled_steps = None
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ContractError(
            f"forward returned {type(logits).__name__}, not a floating tensor of logits"
        )
    want = tuple(batch.targets.shape)
    if tuple(logits.shape) != want:
        raise ContractError(
            f"forward(inputs {list(batch.inputs.shape)}) returned logits of shape "
            f"{list(logits.shape)}, expected {list(want)} ([T, B, O], time-major)"
        )
    if model.has_memory:
        check_trace(model, batch)
    if spy and not calls:
        raise ContractError(
            "train.compile is on and the model defines step, but its forward does not run the "
            "steps through self.unroll(inputs, state), so nothing would be compiled"
        )


def check_trace(model: SequenceModel, batch: Batch) -> None:
    """A model with `has_memory` declares its locations and draws the memory pictures: it has an
    integer `memory_size`, and forward(inputs, trace=True) returns (logits, {"read_weights":
    [T, B, R, N], "write_weights": [T, B, W, N]}), read after the run has trained."""
    size = model.memory_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ContractError(f"has_memory is True but memory_size is {size!r}, not a location count")
    with torch.no_grad(), intra_op_threads(1):
        try:
            out = model(batch.inputs, trace=True)
        except TypeError as error:
            raise ContractError(
                f"has_memory is True but forward(inputs, trace=True) fails: {error}"
            ) from None
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise ContractError(
            "has_memory is True but forward(inputs, trace=True) does not return (logits, "
            '{"read_weights": ..., "write_weights": ...})'
        )
    T, B = batch.inputs.shape[:2]
    for name in ("read_weights", "write_weights"):
        weights = out[1].get(name)
        shape = None if not isinstance(weights, torch.Tensor) else list(weights.shape)
        if shape is None or len(shape) != 4 or shape[:2] != [T, B] or shape[3] != size:
            raise ContractError(
                f"forward(inputs, trace=True)'s {name} is {shape or type(weights).__name__}, "
                f"expected [T, B, heads, memory_size] = [{T}, {B}, heads, {size}]"
            )
