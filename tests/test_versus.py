"""benchmarks/speed_suite/versus.py: a model now against itself at another git revision, in one
process. The revision here is a throwaway repository's commit of today's models/ with a marker
added, so the test needs git but not this checkout's history."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ntm_bench.benchmarks.speed_suite import versus
from ntm_bench.benchmarks.speed_suite.configs import SMOKE_SIZES
from conftest import BUILTIN_MODELS as BUILTIN
from ntm_bench.models import MODELS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repository whose one commit holds models/ with MARKER = 'then' in its __init__."""
    folder = tmp_path_factory.mktemp("rev")
    shutil.copytree(
        ROOT / "models", folder / "models", ignore=shutil.ignore_patterns("__pycache__")
    )
    with open(folder / "models" / "__init__.py", "a", encoding="utf-8") as init:
        init.write("\nMARKER = 'then'\n")
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "models"], check=True)
    subprocess.run([*git, "commit", "-qm", "then"], check=True)
    return folder


def test_the_revisions_models_load_apart_from_todays(repo, tmp_path):
    commit = versus.resolve("HEAD", repo)
    then = versus.load_models_at(commit, repo, tmp_path)
    package = sys.modules[f"models_at_{commit[:12]}"]
    # the copy's own registry: plugins that other tests or an installed package add to today's
    # MODELS at run time are not in it
    assert package.MARKER == "then" and set(then) == set(BUILTIN)
    assert then["ntm"] is not MODELS["ntm"]
    # every module of the copy imports the copy, none today's package
    inside = [m for name, m in sys.modules.items() if name.startswith(package.__name__)]
    assert len(inside) > 5
    assert all(Path(m.__file__).is_relative_to(tmp_path) for m in inside)
    assert sys.modules[then["ntm"].__module__].__name__.startswith(package.__name__)


def test_compare_gives_one_ratio_per_model_mode_and_batch(repo):
    ratios = versus.compare(
        "HEAD",
        ["transformer", "lstm"],  # not the memory models: a revision's native kernels compile cold
        modes=("eager",),
        batches=(2, 3),
        rounds=3,
        round_s=0.01,
        sizes=SMOKE_SIZES,
        repo=repo,
    )
    assert [(r.model, r.mode, r.batch) for r in ratios] == [
        ("transformer", "eager", 2),
        ("lstm", "eager", 2),
        ("transformer", "eager", 3),
        ("lstm", "eager", 3),
    ]
    for r in ratios:
        assert r.low <= r.median <= r.high and r.then_s > 0 and r.now_s > 0
    text = versus.format_ratios(ratios, "HEAD")
    assert text.count("batch") == 4 and "now / at HEAD" in text


def test_a_model_without_a_compile_step_has_no_compiled_row(repo, monkeypatch):
    # on a CPU neither compiles anything: the LSTM has no step loop, and the NTM runs its native
    # kernel (FusedModel.compile_step says False there)
    monkeypatch.setattr(versus.torch, "compile", lambda fn, **options: fn)  # compiling is slow
    ratios = versus.compare(
        "HEAD",
        ["lstm", "ntm"],
        modes=("compiled",),
        rounds=2,
        round_s=0.01,
        sizes=SMOKE_SIZES,
        repo=repo,
    )
    assert ratios == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["no-such-rev"], "'no-such-rev' is not a commit"),
        (["HEAD", "--models", ""], "at least one name"),
        (["HEAD", "--models", "ntm,nope"], "unknown model 'nope'"),
        (["HEAD", "--modes", "fast"], "unknown mode 'fast'"),
        (["HEAD", "--batches", "0"], "--batches: sizes must be from 1 to 1024, got 0"),
        (["HEAD", "--batches", "-4"], "--batches: sizes must be"),
        (["HEAD", "--batches", "2048"], "--batches: sizes must be"),
        (["HEAD", "--batches", "1,2147483648"], "--batches: sizes must be"),
        (["HEAD", "--batches", "x"], "--batches: expected a comma list of whole numbers"),
        (["HEAD", "--batches", ""], "--batches: expected"),
        (["HEAD", "--batches", "16,"], "--batches: expected"),
        (["HEAD", "--rounds", "0"], "--rounds must be from 1 to"),
        (["HEAD", "--rounds", "-1"], "--rounds must be"),
        (["HEAD", "--rounds", "2147483648"], "--rounds must be"),
        *[
            (
                ["HEAD", f"--round-s={value}"],
                "--round-s must be a number of seconds above 0 and at most 3600, got "
                f"{float(value)}",
            )
            for value in ("0", "0.0", "-1", "nan", "inf", "-inf", "1e9")
        ],
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    """Refused before git is asked or a model built: one line naming the flag."""
    assert versus.main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert message in err and "\n" not in err and not captured.out, err
