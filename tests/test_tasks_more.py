"""Associative recall, n-grams and priority sort: plain-Python oracles, statistics, the n-gram
optimum against the paper's number, and the models running on their batches."""

import math
from collections import Counter

import pytest
import torch

from ntm_bench.models import build_model
from ntm_bench.tasks import TASKS, build_task
from ntm_bench.tasks.base import Batch, per_sequence_bce_bits
from ntm_bench.tasks.ngrams import arcsine


def generator(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- associative recall


def recall_oracle(inputs, width):
    """Plain Python: split the input at its delimiters, find the query among the items, expect the
    item after it right after the closing query delimiter. Returns (target, mask, items, index)."""
    rows = inputs.tolist()
    items, query, mode, end = [], [], "start", None
    for t, row in enumerate(rows):
        if row[width] == 1:
            items.append([])
            mode = "item"
        elif row[width + 1] == 1:
            if mode == "query":
                end = t
                break
            mode = "query"
        elif mode == "item":
            items[-1].append(row[:width])
        elif mode == "query":
            query.append(row[:width])
    matches = [i for i, item in enumerate(items) if item == query]
    assert len(matches) == 1, "the query matches exactly one item"
    index = matches[0]
    assert index < len(items) - 1, "the last item is never queried"
    target = [[0.0] * width for _ in rows]
    mask = [0.0] * len(rows)
    for i, bits in enumerate(items[index + 1]):
        target[end + 1 + i], mask[end + 1 + i] = bits, 1.0
    return target, mask, items, index


def test_associative_recall_oracle():
    task = build_task("associative_recall", width=4, item_length=3, min_items=2, max_items=5)
    batch = task.sample(40, generator(3))
    seen = Counter()
    for b in range(40):
        target, mask, items, _ = recall_oracle(batch.inputs[:, b], 4)
        assert all(len(item) == 3 for item in items)
        assert batch.targets[:, b].tolist() == target
        assert batch.mask[:, b].tolist() == mask
        seen[len(items)] += 1
    assert set(seen) == {2, 3, 4, 5}


def test_associative_recall_paper_layout_and_query_distribution():
    task = build_task("associative_recall")
    assert (task.input_size, task.output_size, task.item_length) == (8, 6, 3)
    batch = task.sample(600, generator(5), items=4)
    assert batch.mask.shape[0] == 4 * 4 + 2 * 3 + 2
    queried = Counter(recall_oracle(batch.inputs[:, b], 6)[3] for b in range(600))
    assert set(queried) == {0, 1, 2}  # uniform over all items but the last
    assert all(150 <= queried[i] <= 250 for i in range(3)), queried


def test_associative_recall_items_are_distinct_even_when_scarce():
    # 1-bit vectors, 2 per item: only 4 items exist, so a list of 4 is a permutation of them.
    task = build_task("associative_recall", width=1, item_length=2, min_items=4, max_items=4)
    batch = task.sample(50, generator(0))
    for b in range(50):
        _, _, items, _ = recall_oracle(batch.inputs[:, b], 1)
        assert sorted(map(str, items)) == sorted(
            map(str, [[[0.0], [0.0]], [[0.0], [1.0]], [[1.0], [0.0]], [[1.0], [1.0]]])
        )
    with pytest.raises(ValueError, match="items"):
        task.sample(2, generator(0), items=5)
    duplicates = build_task(
        "associative_recall", width=1, item_length=1, max_items=6, distinct=False
    )
    assert duplicates.sample(4, generator(0), items=6).inputs.shape[1] == 4


# ---------------------------------------------------------------- priority sort


def sort_oracle(inputs, width, keep_fraction):
    """Plain Python: read (priority, bits) until the delimiter, expect the top ones by `sorted`."""
    rows = inputs.tolist()
    end = next(t for t, row in enumerate(rows) if row[width + 1] == 1)
    pairs = [(row[width], row[:width]) for row in rows[:end]]
    keep = max(1, math.floor(keep_fraction * len(pairs) + 0.5 + 1e-9))
    ranked = sorted(pairs, key=lambda pair: pair[0], reverse=True)[:keep]
    target = [[0.0] * width for _ in rows]
    mask = [0.0] * len(rows)
    for i, (_, bits) in enumerate(ranked):
        target[end + 1 + i], mask[end + 1 + i] = bits, 1.0
    return target, mask, [p for p, _ in pairs]


def test_priority_sort_oracle():
    task = build_task("priority_sort", width=5, min_length=1, max_length=12, keep_fraction=0.7)
    batch = task.sample(30, generator(2))
    priorities = []
    for b in range(30):
        target, mask, p = sort_oracle(batch.inputs[:, b], 5, 0.7)
        assert batch.targets[:, b].tolist() == target
        assert batch.mask[:, b].tolist() == mask
        priorities += p
    assert (
        all(-1 <= p <= 1 for p in priorities) and min(priorities) < -0.8 and max(priorities) > 0.8
    )


def test_priority_sort_paper_sizes():
    task = build_task("priority_sort")
    assert (task.input_size, task.output_size) == (10, 8)
    assert task.kept(torch.tensor([20, 30, 40, 1, 5])).tolist() == [16, 24, 32, 1, 4]
    for length, keep in ((20, 16), (30, 24)):
        batch = task.sample(3, generator(0), length=length)
        assert batch.mask.shape[0] == length + 1 + keep
        assert batch.mask.sum(0).tolist() == [keep] * 3
    # halves up
    assert build_task("priority_sort", keep_fraction=0.5).kept(torch.tensor([5]))[0] == 3


# ---------------------------------------------------------------- n-grams


def ngram_optimum_python(bits, scored, order):
    """Plain Python: -log2 of (N1 + 1/2) / (N1 + N0 + 1) for each scored bit, 1/2 without
    context."""
    counts, cost = {}, 0.0
    for t, x in enumerate(bits):
        p = 0.5
        if t >= order:
            context = tuple(bits[t - order : t])
            n0, n1 = counts.get(context, (0, 0))
            p_one = (n1 + 0.5) / (n0 + n1 + 1)
            p = p_one if x == 1 else 1 - p_one
            counts[context] = (n0 + (x == 0), n1 + (x == 1))
        if scored[t]:
            cost -= math.log2(p)
    return cost


def test_ngrams_optimal_cost_hand_example():
    # order 1, bits 1 1 0 1: 1 bit (no context), then context 1 unseen: 1/2 -> 1 bit; context 1
    # has seen one 1: P(0) = 1 - 1.5/2 = 1/4 -> 2 bits; context 0 unseen: 1 bit. Total 5.
    task = build_task("ngrams", order=1, min_length=4, max_length=4)
    inputs = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 0.0]]])
    targets = torch.tensor([[[1.0]], [[1.0]], [[0.0]], [[1.0]]])
    batch = Batch(inputs, targets, torch.ones(4, 1))
    assert task.optimal_cost(batch).tolist() == [5.0]


def test_ngrams_layout_and_optimal_cost_match_python_counting():
    scored_all = build_task("ngrams", min_length=30, max_length=60)
    scored_late = build_task("ngrams", min_length=30, max_length=60, score_first=False)
    every, late = scored_all.sample(6, generator(4)), scored_late.sample(6, generator(4))
    assert torch.equal(every.inputs, late.inputs)  # same draws, only the mask differs
    fast_every, fast_late = scored_all.optimal_cost(every), scored_late.optimal_cost(late)
    lengths = every.mask.sum(0).long().tolist()
    assert len(set(lengths)) > 1, "the batch mixes lengths, so padding is exercised"
    for b, n in enumerate(lengths):
        bits = [int(x) for x in every.targets[:n, b, 0].tolist()]
        assert every.inputs[:n, b].tolist() == [[0.0, 1.0]] + [[float(x), 0.0] for x in bits[:-1]]
        assert late.mask[:, b].tolist() == [0.0] * 5 + [1.0] * (n - 5) + [0.0] * (
            len(late.mask) - n
        )
        assert float(fast_every[b]) == pytest.approx(
            ngram_optimum_python(bits, [1] * n, 5), abs=1e-9
        )
        late_scored = [t >= 5 for t in range(n)]
        assert float(fast_late[b]) == pytest.approx(
            ngram_optimum_python(bits, late_scored, 5), abs=1e-9
        )


def test_ngrams_optimum_matches_the_paper():
    # The exact optimum: 133.14 bits per sequence with all 200 predictions scored, 128.14 without
    # the first 5.
    task = build_task("ngrams")
    batch = task.sample(10_000, generator(2014))
    cost = task.optimal_cost(batch)
    assert abs(float(cost.mean()) - 133.14) < 0.8
    assert 30 < float(cost.std()) < 42  # "one sequence's cost varies by ~36 bits"
    late = build_task("ngrams", score_first=False)
    late_cost = late.optimal_cost(late.sample(10_000, generator(2014)))
    assert torch.allclose(late_cost, cost - 5)  # the same streams; the first 5 bits cost 1 each


def test_arcsine_is_beta_half_half():
    x = arcsine((200_000,), generator(0))
    assert abs(float(x.mean()) - 0.5) < 0.005 and abs(float(x.var()) - 1 / 8) < 0.003
    for q in (0.01, 0.1, 0.3, 0.5, 0.8, 0.97):  # against F(x) = (2/pi) asin(sqrt(x))
        assert abs(float((x <= q).double().mean()) - 2 / math.pi * math.asin(math.sqrt(q))) < 0.005


def test_ngrams_tables_are_fresh_per_sequence():
    # Long sequences estimate each context's P(1); the estimates must spread across sequences like
    # Beta(1/2, 1/2) (variance 1/8, much mass near 0 and 1), not sit at one shared table's values.
    task = build_task("ngrams", order=3, min_length=4000, max_length=4000)
    bits = task.sample(48, generator(6)).targets[:, :, 0].T.long()  # [B, T]
    context = bits[:, 2:-1] * 4 + bits[:, 1:-2] * 2 + bits[:, :-3]
    nxt = bits[:, 3:].double()
    onehot = torch.nn.functional.one_hot(context, 8).double()  # [B, T', 8]
    seen = onehot.sum(1)
    freq = ((onehot * nxt[..., None]).sum(1) / seen)[seen >= 30]  # contexts the source visits
    assert abs(float(freq.var()) - 1 / 8) < 0.02  # one shared table: ~0.002
    extreme = float(((freq < 0.1) | (freq > 0.9)).double().mean())
    assert 0.3 < extreme < 0.5  # Beta(1/2, 1/2): 0.41
    first = task.sample(2000, generator(7)).targets[:3, :, 0]
    assert abs(float(first.mean()) - 0.5) < 0.03  # uniform first bits


# ---------------------------------------------------------------- all three


@pytest.mark.parametrize(
    "name, params, word",
    [
        ("associative_recall", {"width": 0}, "width"),
        ("associative_recall", {"item_length": 0}, "item_length"),
        ("associative_recall", {"min_items": 1}, "min_items"),
        ("associative_recall", {"min_items": 5, "max_items": 4}, "max_items"),
        ("associative_recall", {"width": 1, "item_length": 1, "max_items": 3}, "max_items"),
        ("ngrams", {"order": 0}, "order"),
        ("ngrams", {"min_length": 0}, "min_length"),
        ("ngrams", {"min_length": 10, "max_length": 5}, "max_length"),
        ("ngrams", {"min_length": 5, "score_first": False}, "score_first"),
        ("priority_sort", {"width": 0}, "width"),
        ("priority_sort", {"min_length": 3, "max_length": 2}, "max_length"),
        ("priority_sort", {"keep_fraction": 0.0}, "keep_fraction"),
        ("priority_sort", {"keep_fraction": 1.5}, "keep_fraction"),
    ],
)
def test_bad_parameters_are_named(name, params, word):
    with pytest.raises(ValueError, match=word):
        build_task(name, **params)


SMALL_MODELS = {
    "ntm": {"controller_size": 16, "memory_size": 8, "memory_width": 5},
    "lstm": {"hidden_size": 16, "num_layers": 2},
}


@pytest.mark.parametrize("model_name", SMALL_MODELS)
@pytest.mark.parametrize(
    "task_name, params",
    [
        ("associative_recall", {"width": 3, "item_length": 2, "max_items": 4}),
        ("ngrams", {"min_length": 10, "max_length": 20}),
        ("priority_sort", {"width": 3, "min_length": 2, "max_length": 6}),
    ],
)
def test_models_run_and_a_sequence_scores_the_same_alone(model_name, task_name, params):
    task = build_task(task_name, **params)
    torch.manual_seed(0)
    model = build_model(
        model_name, task.input_size, task.output_size, **SMALL_MODELS[model_name]
    ).eval()
    batch = task.sample(4, generator(1))
    with torch.no_grad():
        logits = model(batch.inputs)
        assert logits.shape == batch.targets.shape
        together = per_sequence_bce_bits(logits, batch.targets, batch.mask)
        assert torch.isfinite(together).all()
        for b in range(4):
            n = int(batch.mask[:, b].nonzero().max()) + 1  # the sequence without its padding
            alone = model(batch.inputs[:n, b : b + 1])
            cost = per_sequence_bce_bits(
                alone, batch.targets[:n, b : b + 1], batch.mask[:n, b : b + 1]
            )
            assert float(cost) == pytest.approx(float(together[b]), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_trivial_costs_are_per_sequence_and_none_above_chance(name):
    task = build_task(name)
    batch = task.sample(5, torch.Generator().manual_seed(0))
    costs = task.trivial_costs(batch)
    assert torch.equal(costs["chance"], batch.mask.sum(0) * task.output_size)
    for cost in costs.values():
        assert cost.shape == (5,) and bool((cost <= costs["chance"]).all())
    assert task.scored_bits() >= int(costs["chance"].max())


def test_trivial_costs_by_hand():
    g = torch.Generator().manual_seed(0)
    # repeat copy, length 2 x 2 repeats of 8 bits: 5 scored steps of 9 channels; placing the end
    # marker alone leaves the 4 content steps' 8 bits at 1 bit each
    costs = build_task("repeat_copy").trivial_costs(
        build_task("repeat_copy").sample(1, g, length=2, repeats=2)
    )
    assert costs["chance"].tolist() == [45] and costs["memoryless"].tolist() == [32]
    # priority sort of 5 vectors keeps 4 of 8 bits: 32 at chance; the first one known: 24
    task = build_task("priority_sort")
    costs = task.trivial_costs(task.sample(1, g, length=5))
    assert costs["chance"].tolist() == [32] and costs["one_item"].tolist() == [24]
    # copy of 3 vectors: 24 scored bits; associative recall: one item of 3 x 6 bits
    assert build_task("copy").trivial_costs(build_task("copy").sample(1, g, length=3))[
        "chance"
    ].tolist() == [24]
    assert build_task("associative_recall").scored_bits(items=6) == 18
