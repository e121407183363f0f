"""Every published number can be reproduced: the first 200 steps of a published replicate run,
retrained from its stored config, give the published curve points (bit for bit on the machine
kind that trained it, within benchmarks.reproduce.TOLERANCE elsewhere)."""

import json
from pathlib import Path

import pytest

from benchmarks.reproduce import replay

PUBLISHED = Path(__file__).resolve().parent.parent / "results" / "published" / "replicate"
STEPS = 200


def published_run(task: str, model: str) -> dict:
    """The lowest seed's published run of (task, model)."""
    files = sorted((PUBLISHED / task / model).glob("seed*-*.json"))
    assert files, f"no published {model} run on {task} under {PUBLISHED}"
    return json.loads(files[0].read_text())


@pytest.fixture(scope="module")
def lstm_copy():
    # The paper-size LSTM on copy trains eager (nothing to compile): 200 steps take ~15 s.
    return replay(published_run("copy", "lstm"), STEPS)


def test_published_lstm_copy_run_retrains_to_the_same_curve(lstm_copy):
    # training points every 25 steps, validation every 100
    assert len(lstm_copy.published) >= STEPS // 25
    assert {p["split"] for p in lstm_copy.published} == {"train", "val"}
    assert lstm_copy.mismatches() == []


def test_a_changed_published_number_is_caught(lstm_copy):
    changed = [dict(p) for p in lstm_copy.published]
    changed[3]["cost_bits"] *= 1.01
    assert len(lstm_copy._replace(published=changed).mismatches()) == 1
    shorter = lstm_copy._replace(retrained=lstm_copy.retrained[:-1])
    assert "published points" in shorter.mismatches()[0]
