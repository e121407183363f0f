"""The installed distribution carries one top-level package, ntm_bench: a wheel built from this
tree, installed into a fresh virtual environment beside a user's project with its own `models`
and `tasks` packages, trains a suite through the `ntm-bench` console script and loads the run back
with load_run, while the user's packages stay theirs.

The fresh environment gets the dependencies by a .pth file pointing at a folder of links to the
test environment's installed packages, minus ntm_bench itself (an editable install here) and
every plugin: pip would fetch the same packages from the index, which CI may not reach twice.
"""

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "tasks", "benchmarks", "results", "reports")
# what a wheel is built from; results/published and reports/out are data, not the package
SKIP = shutil.ignore_patterns("__pycache__", "*.sqlite", "published", "out", "*.egg-info", "build")


def build_wheel(tmp: Path) -> Path:
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "__init__.py", "run_suite.py"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=SKIP)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["-q", "-w", str(tmp / "dist"), str(source)],
        check=True,
    )
    (wheel,) = (tmp / "dist").glob("ntm_bench-*.whl")
    return wheel


def dependencies(tmp: Path) -> Path:
    """A folder of links to this environment's installed packages, without ntm_bench and without
    any editable install's or plugin's files (their .pth finders would not run there anyway)."""
    folder = tmp / "deps"
    folder.mkdir()
    for packages in site.getsitepackages():
        for entry in Path(packages).iterdir():
            name = entry.name.lower()
            if name.startswith(("ntm_bench", "__editable__", "_ntm_bench")) or name.endswith(
                ".pth"
            ):
                continue
            if not (folder / entry.name).exists():
                (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(tmp)
    env = tmp / "env"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
    (purelib / "dependencies.pth").write_text(f"{dependencies(tmp)}\n")
    # --ignore-installed: without it pip first uninstalls the ntm-bench it finds in the test's
    # own environment (the editable install) as if it were the one being replaced
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
        ]
        + ["--prefix", str(env), str(wheel)],
        check=True,
    )
    return wheel, python, purelib, env / "bin" / "ntm-bench"


def test_the_wheel_has_one_top_level_package(installed):
    wheel, _, purelib, script = installed
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert {t for t in tops if not t.endswith(".dist-info")} == {"ntm_bench"}
    assert "ntm-bench = ntm_bench.run_suite:console" in scripts
    assert script.is_file()
    for package in PACKAGES:
        assert (purelib / "ntm_bench" / package / "__init__.py").is_file()
        assert not (purelib / package).exists()
    # package data: the profiles, the paper's reference values and the claims
    assert (purelib / "ntm_bench" / "benchmarks" / "profiles" / "quick.yaml").is_file()
    assert (purelib / "ntm_bench" / "reports" / "claims.yaml").is_file()


def test_a_suite_and_load_run_beside_a_users_own_models_package(installed, tmp_path):
    _, python, purelib, script = installed
    project = tmp_path / "project"
    for package in ("models", "tasks"):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text(f"OWNER = 'the user ({package})'\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    # the console script, run by the fresh environment's interpreter
    trained = subprocess.run(
        [str(python), str(script), "--profile", "quick", "--models", "ntm,lstm", "--tasks", "copy"]
        + ["--seeds", "1", "--set", "train.steps=20", "--jobs", "1", "--store", "runs.sqlite"],
        cwd=project,
        env=clean,
        capture_output=True,
        text=True,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    # the report beside the store, nothing written into the installed package but the kernels'
    # compiled cache (models/__pycache__, as numba caches beside a module)
    assert (project / "reports" / "quick" / "index.html").is_file()
    assert not (purelib / "ntm_bench" / "reports" / "out").exists()
    assert list((purelib / "ntm_bench" / "models" / "__pycache__").glob("ntm_kernel-*.compiled"))
    # the user's code: their own models and tasks packages, and ours by its one name
    user = textwrap.dedent(
        """
        import models, tasks
        import ntm_bench.models
        from ntm_bench.benchmarks.harness.trained import load_run
        from ntm_bench.results.store import Store

        assert models.OWNER == "the user (models)" and tasks.OWNER == "the user (tasks)"
        assert "lstm" in ntm_bench.models.MODELS
        store = Store("runs.sqlite")
        runs = store.runs().set_index("model")
        model, task = load_run(store, runs.run_id["lstm"])
        batch = task.sample(2, __import__("torch").Generator().manual_seed(0))
        print(type(model).__name__)
        print(tuple(model(batch.inputs).shape) == tuple(batch.targets.shape))
        print(ntm_bench.__file__)
        # the NTM trained through its native kernel, compiled on first use into the package
        model, _ = load_run(store, runs.run_id["ntm"])
        print(type(model).__name__, runs.status["ntm"])
        """
    )
    loaded = subprocess.run(
        [str(python), "-c", user], cwd=project, env=clean, capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    name, shaped, location, ntm = loaded.stdout.splitlines()
    assert (name, shaped, ntm) == ("LSTM", "True", "NTM done")
    assert Path(location).resolve().parent == (purelib / "ntm_bench").resolve()
