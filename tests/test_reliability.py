"""Crash safety, divergence, concurrent suites: the store never loses or duplicates a result."""

import subprocess
import sys
from pathlib import Path

import pytest

import run_suite
from conftest import snapshot, suite_process, tiny_profile
from ntm_bench.models import MODELS
from ntm_bench.models.lstm import LSTM
from ntm_bench.results.store import Store

ROOT = Path(__file__).resolve().parent.parent

# checkpoints every 3 steps and a validation every 8: the kill points fall between them
TRAIN = {"steps": 16, "eval_interval": 8, "log_interval": 4, "checkpoint_interval": 3}


@pytest.fixture
def profile(tmp_path):
    return tiny_profile(tmp_path, train=TRAIN)


def suite(profile, store, *extra, env=None, check=True):
    """The suite in a subprocess (conftest.suite_process), asserting success unless `check` is
    off."""
    out = suite_process(profile, store, *extra, env=env)
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted suite's results, computed once for all the interruption tests (run_ids
    depend on the config, not on where the profile file lives)."""
    folder = tmp_path_factory.mktemp("reference")
    suite(tiny_profile(folder, train=TRAIN), folder / "reference.sqlite")
    return snapshot(folder / "reference.sqlite")


@pytest.mark.parametrize(
    "kill_at", ["step:5", "step:40", "checkpoint:1", "checkpoint:6", "store:1", "store:3"]
)
def test_sigkill_then_rerun_equals_uninterrupted(kill_at, profile, tmp_path, reference):
    store = tmp_path / "killed.sqlite"
    killed = suite(profile, store, env={"NTM_BENCH_KILL_AT": kill_at}, check=False)
    assert killed.returncode == -9, killed.stderr
    suite(profile, store)
    assert snapshot(store) == reference
    assert not resume_checkpoints(tmp_path / "checkpoints")


def resume_checkpoints(folder):
    """The resume checkpoints in `folder` (finished runs' kept weights, *.final.pt, are not)."""
    return [p for p in folder.glob("*.pt") if not p.name.endswith(".final.pt")]


def test_corrupt_checkpoint_is_set_aside_and_the_run_restarts(profile, tmp_path, reference):
    store = tmp_path / "s.sqlite"
    suite(profile, store, env={"NTM_BENCH_KILL_AT": "step:10"}, check=False)
    checkpoints = resume_checkpoints(tmp_path / "checkpoints")
    assert len(checkpoints) == 1
    checkpoints[0].write_bytes(b"not a checkpoint")
    out = suite(profile, store)
    assert "unreadable" in out.stderr
    assert snapshot(store) == reference
    assert list((tmp_path / "checkpoints").glob("*.corrupt"))


def test_two_concurrent_suites_train_every_run_exactly_once(profile, tmp_path, reference):
    store = tmp_path / "shared.sqlite"
    Store(store).close()
    command = [
        sys.executable,
        str(ROOT / "run_suite.py"),
        "--profile",
        profile,
        "--store",
        str(store),
        "--jobs",
        "1",
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    trained = [
        line.split()
        for out, _ in outputs
        for line in out.splitlines()
        if line.strip().endswith(" done")
    ]
    assert len(trained) == 4, outputs  # 2 models x 2 seeds, each exactly once
    assert len({tuple(t[:4]) for t in trained}) == 4
    assert snapshot(store) == reference


class NaNModel(LSTM):
    """An LSTM whose outputs turn NaN from its 10th training forward pass on: divergence mid-run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self, inputs):
        out = super().forward(inputs)
        self.calls += self.training
        return out * float("nan") if self.calls >= 10 else out


def test_injected_nan_marks_the_run_diverged_and_the_suite_goes_on(profile, tmp_path, monkeypatch):
    monkeypatch.setitem(MODELS, "nan", NaNModel)
    path = tiny_profile(
        tmp_path, train=TRAIN, name="nan", models={"nan": {"hidden_size": 8, "num_layers": 1}}
    )
    store_path = tmp_path / "nan.sqlite"
    code = run_suite.main(
        ["--profile", str(path), "--store", str(store_path), "--jobs", "1", "--seeds", "1"]
    )
    runs = Store(store_path).runs().set_index("model")
    assert runs.loc["nan", "status"] == "diverged"
    assert runs.loc["nan", "error"] == "non-finite loss at step 10"
    assert runs.loc["ntm", "status"] == "done" and runs.loc["lstm", "status"] == "done"
    curves = Store(store_path).curves()
    assert len(curves[curves.model == "nan"]) > 0, "the curve before the divergence is kept"
    assert code == 0
    # a diverged run is a result: a rerun does not train it again
    assert (
        run_suite.main(
            ["--profile", str(path), "--store", str(store_path), "--jobs", "1", "--seeds", "1"]
        )
        == 0
    )
