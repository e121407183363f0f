"""Tasks, parametrized over the registry: shapes, mask, determinism, and plain-Python oracles."""

import random

import numpy as np
import pytest
import torch

from ntm_bench.tasks import TASKS, build_task
from ntm_bench.tasks.base import bit_errors, cost_bits

SMALL = {
    "copy": {"width": 3, "max_length": 4},
    "repeat_copy": {"width": 3, "max_length": 3, "max_repeats": 3},
    "associative_recall": {"width": 3, "item_length": 2, "max_items": 4},
    "ngrams": {"order": 2, "min_length": 3, "max_length": 9},
    "priority_sort": {"width": 3, "min_length": 2, "max_length": 6},
}


def small(name):
    return build_task(name, **SMALL.get(name, {}))


@pytest.mark.parametrize("name", TASKS)
def test_shapes_and_mask(name):
    task = small(name)
    batch = task.sample(5, torch.Generator().manual_seed(0))
    T, B = batch.mask.shape
    assert B == 5
    assert batch.inputs.shape == (T, B, task.input_size)
    assert batch.targets.shape == (T, B, task.output_size)
    assert set(batch.mask.unique().tolist()) <= {0.0, 1.0}
    assert (batch.mask.sum(0) > 0).all(), "every sequence has scored outputs"
    # nothing is asked of the model outside the mask
    assert (batch.targets * (1 - batch.mask).unsqueeze(-1) == 0).all()


@pytest.mark.parametrize("name", TASKS)
def test_same_generator_same_batch_and_global_seeds_do_not_matter(name):
    task = small(name)
    first = task.sample(4, torch.Generator().manual_seed(7))
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    torch.rand(10)
    second = task.sample(4, torch.Generator().manual_seed(7))
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    third = task.sample(4, torch.Generator().manual_seed(8))
    assert not torch.equal(first.inputs, third.inputs) or first.inputs.shape != third.inputs.shape


@pytest.mark.parametrize("name", TASKS)
def test_axes_fix_the_size_and_bad_sizes_are_rejected(name):
    task = small(name)
    for axis in task.axes:
        batch = task.sample(3, torch.Generator().manual_seed(0), **{axis: 2})
        assert batch.mask.shape[1] == 3
        with pytest.raises(ValueError, match=axis):
            task.sample(3, torch.Generator().manual_seed(0), **{axis: 0})
    with pytest.raises(ValueError, match="no axis"):
        task.check_size({"nonsense": 3})


@pytest.mark.parametrize("name", TASKS)
def test_padding_is_at_the_end_and_zero(name):
    """After a sequence's last scored step there is only padding: zero inputs, zero mask."""
    task = small(name)
    batch = task.sample(16, torch.Generator().manual_seed(1))
    steps = batch.mask.shape[0]
    for b in range(16):
        last = max(t for t in range(steps) if batch.mask[t, b] == 1)
        assert (batch.inputs[last + 1 :, b] == 0).all()
        assert (batch.mask[last + 1 :, b] == 0).all()


@pytest.mark.parametrize("name", TASKS)
def test_training_range_attributes(name):
    """Each axis with a training range exposes min_<axis> <= max_<axis> (reports and traces use
    them)."""
    task = small(name)
    for axis in task.axes:
        if hasattr(task, f"max_{axis}"):
            assert getattr(task, f"min_{axis}") <= getattr(task, f"max_{axis}")


def copy_oracle(inputs, width):
    """Plain Python: read bits until the delimiter, expect them back right after it."""
    rows = inputs.tolist()
    end = next(t for t, row in enumerate(rows) if row[width] == 1)
    seq = [row[:width] for row in rows[:end]]
    target = [[0.0] * width for _ in rows]
    mask = [0.0] * len(rows)
    for i, bits in enumerate(seq):
        target[end + 1 + i] = bits
        mask[end + 1 + i] = 1.0
    return target, mask


def test_copy_oracle():
    task = build_task("copy", width=3, max_length=5)
    batch = task.sample(6, torch.Generator().manual_seed(3))
    for b in range(6):
        target, mask = copy_oracle(batch.inputs[:, b], 3)
        assert batch.targets[:, b].tolist() == target
        assert batch.mask[:, b].tolist() == mask


def repeat_copy_oracle(inputs, width, mean, std):
    rows = inputs.tolist()
    end = next(t for t, row in enumerate(rows) if row[width] == 1)
    seq = [row[:width] for row in rows[:end]]
    repeats = round(rows[end + 1][width + 1] * std + mean)
    target = [[0.0] * (width + 1) for _ in rows]
    mask = [0.0] * len(rows)
    t = end + 2
    for _ in range(repeats):
        for bits in seq:
            target[t], mask[t] = bits + [0.0], 1.0
            t += 1
    target[t], mask[t] = [0.0] * width + [1.0], 1.0
    return target, mask, repeats


def test_repeat_copy_oracle_and_normalization():
    task = build_task("repeat_copy", width=3, max_length=4, max_repeats=5)
    assert task.count_mean == 3.0 and task.count_std == pytest.approx(2**0.5)
    batch = task.sample(8, torch.Generator().manual_seed(4))
    counts = []
    for b in range(8):
        target, mask, repeats = repeat_copy_oracle(
            batch.inputs[:, b], 3, task.count_mean, task.count_std
        )
        counts.append(repeats)
        assert batch.targets[:, b].tolist() == target
        assert batch.mask[:, b].tolist() == mask
    assert all(1 <= c <= 5 for c in counts)


def test_repeat_copy_counts_have_mean_zero_variance_one():
    task = build_task("repeat_copy")
    batch = task.sample(4000, torch.Generator().manual_seed(0))
    counts = batch.inputs[:, :, task.width + 1].sum(0)
    assert abs(float(counts.mean())) < 0.05 and abs(float(counts.var()) - 1) < 0.05


def test_metrics_hand_example():
    # one sequence, two scored steps of one bit each, one unscored step
    logits = torch.tensor([[[0.0]], [[2.0]], [[5.0]]])
    targets = torch.tensor([[[1.0]], [[0.0]], [[0.0]]])
    mask = torch.tensor([[1.0], [1.0], [0.0]])
    expected = (np.log(2) + np.log(1 + np.exp(2.0))) / np.log(2)  # BCE in nats / ln 2
    assert float(cost_bits(logits, targets, mask)) == pytest.approx(expected, rel=1e-6)
    # logit 0 is not > 0, so predicts 0 against target 1 (wrong); logit 2 predicts 1 against 0
    # (wrong)
    assert float(bit_errors(logits, targets, mask)) == 2.0
