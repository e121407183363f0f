"""The Ray executor gives the local executor's results; TensorBoard gets live curves."""

from pathlib import Path

import pytest

import run_suite
from conftest import tiny_profile
from ntm_bench.results.store import Store


def results(store_path):
    store = Store(store_path)
    curves = store.curves().drop(columns=["wall_s"]).to_dict("records")
    evals = store.evals().to_dict("records")
    runs = store.runs()[["run_id", "status", "final_cost_bits", "converged_step"]].to_dict(
        "records"
    )
    return runs, curves, evals


@pytest.fixture
def profile(tmp_path):
    return tiny_profile(
        tmp_path,
        {
            "steps": 8,
            "batch_size": 3,
            "eval_interval": 4,
            "eval_size": 6,
            "log_interval": 2,
            "checkpoint_interval": 4,
        },
    )


@pytest.mark.ray
def test_ray_executor_equals_local(profile, tmp_path):
    pytest.importorskip("ray", reason="the ray marker runs only with the cluster extra installed")
    base = ["--profile", profile, "--no-report"]
    assert run_suite.main([*base, "--store", str(tmp_path / "local.sqlite"), "--jobs", "1"]) == 0
    assert (
        run_suite.main(
            [*base, "--store", str(tmp_path / "ray.sqlite"), "--executor", "ray", "--jobs", "2"]
        )
        == 0
    )
    assert results(tmp_path / "ray.sqlite") == results(tmp_path / "local.sqlite")


def test_tensorboard_event_files_hold_the_curves(profile, tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    logdir = tmp_path / "tb"
    assert (
        run_suite.main(
            [
                "--profile",
                profile,
                "--no-report",
                "--store",
                str(tmp_path / "s.sqlite"),
                "--jobs",
                "1",
                "--tensorboard",
                str(logdir),
                "--models",
                "ntm,lstm",
            ]
        )
        == 0
    )
    folders = sorted({p.parent for p in Path(logdir).rglob("events.out.tfevents.*")})
    assert len(folders) == 4  # 2 models x 2 seeds, the ntm seeds trained as one batch
    acc = event_accumulator.EventAccumulator(str(folders[0]))
    acc.Reload()
    val = acc.Scalars("val/cost_bits")
    assert [e.step for e in val] == [12, 24]  # sequences seen at steps 4 and 8 (batch 3)


def blas_threads() -> dict[str, int]:
    """Every loaded BLAS library's thread count, by file name."""
    from threadpoolctl import threadpool_info

    return {Path(i["filepath"]).name: i["num_threads"] for i in threadpool_info()
            if i["user_api"] == "blas"}  # fmt: skip


def test_a_worker_runs_one_thread_in_torch_and_in_the_kernels_blas():
    # The kernels' matrix products go to scipy's OpenBLAS (numba's np.dot), whose threads spin
    # between calls: limited with torch's, and given back after the block.
    import torch

    from ntm_bench.benchmarks.process.threads import intra_op_threads

    before = blas_threads()
    assert any("scipy_openblas" in name and "64" not in name for name in before), before
    with intra_op_threads(2):
        assert torch.get_num_threads() == 2
        assert set(blas_threads().values()) == {2}
        with intra_op_threads(1):
            assert torch.get_num_threads() == 1
            assert set(blas_threads().values()) == {1}
        assert set(blas_threads().values()) == {2}
    assert blas_threads() == before
