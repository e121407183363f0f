"""Every published number can be reproduced: the first 200 steps of a run of the published grid,
retrained from its stored config, give the published curve points (bit for bit where the numeric
fingerprint is the one that trained it, within fingerprint.TOLERANCE elsewhere)."""

import json

import pytest

from ntm_bench.benchmarks.harness.published import GRID, ROOT
from ntm_bench.benchmarks.harness.reproduce import replay

PUBLISHED = ROOT / GRID
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


def published_models() -> list[str]:
    return sorted(p.name for p in (PUBLISHED / "copy").iterdir() if p.is_dir())


def test_every_model_has_a_published_copy_run():
    assert {"ntm", "ntm_ff", "lstm", "dnc", "transformer", "lstm_matched"} <= set(
        published_models()
    )


@pytest.mark.parametrize("model", [m for m in published_models() if m != "lstm"])
def test_a_published_run_of_every_model_retrains_to_the_same_curve(model):
    """The first 100 steps (four training points and the first validation point) of each
    model's lowest published seed on copy: the NTM and the DNC through their native kernels,
    the transformer and the matched LSTM through torch (the LSTM: above, 200 steps)."""
    replayed = replay(published_run("copy", model), 100)
    assert [p["step"] for p in replayed.published] == [25, 50, 75, 100, 100]
    assert replayed.mismatches() == []


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "tolerance"])
def test_a_changed_published_number_is_caught(lstm_copy, exact):
    # the retrained points as if published, so both modes start from agreement
    same = lstm_copy._replace(published=lstm_copy.retrained, exact=exact)
    assert same.mismatches() == []
    changed = [dict(p) for p in lstm_copy.retrained]
    changed[3]["cost_bits"] *= 1.01
    assert len(same._replace(published=changed).mismatches()) == 1
    shorter = same._replace(retrained=lstm_copy.retrained[:-1])
    assert "published points" in shorter.mismatches()[0]


def test_rounding_passes_only_the_tolerance_mode(lstm_copy):
    rounded = [dict(p) for p in lstm_copy.retrained]
    rounded[3]["cost_bits"] *= 1 + 3e-7  # a few float32 ulps: what another processor does
    for exact, count in ((True, 1), (False, 0)):
        replay_ = lstm_copy._replace(published=rounded, exact=exact)
        assert len(replay_.mismatches()) == count


@pytest.mark.parametrize(
    "change,exact",
    [
        (None, True),
        ({"cpu": "AuthenticAMD AMD EPYC 7B13"}, False),
        ({"capability": "DEFAULT"}, False),
    ],
    ids=["this fingerprint", "another processor", "other vector kernels"],
)
def test_the_fingerprint_picks_the_mode(change, exact):
    from ntm_bench.benchmarks.process import fingerprint
    from ntm_bench.benchmarks.process.threads import intra_op_threads
    from ntm_bench.benchmarks.harness.reproduce import same_processor

    with intra_op_threads(1):  # as replay sets it, from the run's own thread count
        here = fingerprint.fingerprint("cpu")
        assert same_processor({"fingerprint_json": json.dumps(here)})
    recorded = json.dumps(here if change is None else {**here, **change})
    with intra_op_threads(1):
        assert same_processor({"fingerprint_json": recorded}) is exact
    assert same_processor({}) is False, "a file from before fingerprints compares in tolerance"


def edited(change, rehash=False):
    """The lowest seed's published LSTM copy run as JSON text after `change(document, config)`;
    `rehash`: with the run_id recomputed, as a careful editor would."""
    from ntm_bench.benchmarks.harness.plan import RunSpec

    document = published_run("copy", "lstm")
    config = json.loads(document["run"]["config_json"])
    change(document, config)
    document["run"]["config_json"] = json.dumps(config)
    if rehash:
        document["run"]["run_id"] = RunSpec.from_config(config, "replicate").run_id
    return json.dumps(document)


def with_config_json(text):
    document = published_run("copy", "lstm")
    document["run"]["config_json"] = text
    return json.dumps(document)


# (case, the file's bytes or text (None: no file), fragment of the one-line message)
BAD_RUNS = [
    ("missing file", None, "seed1-x.json: cannot read it (No such file or directory)"),
    ("truncated", lambda: edited(lambda d, c: None)[:300], "seed1-x.json: not JSON"),
    ("not UTF-8", lambda: b'{"run": "\xe9"}', "seed1-x.json: not UTF-8 text"),
    ("a list", lambda: "[]", "expected a JSON object, got a list"),
    (
        "config not JSON",
        lambda: with_config_json("{nope"),
        "run.config_json: not JSON",
    ),
    ("config without model", lambda: edited(lambda d, c: c.pop("model")), "config_json.model: m"),
    (
        "unknown model",
        lambda: edited(lambda d, c: c.update(model="gru")),
        "run.config_json.model: 'gru': unknown model (known: ntm, ntm_ff, lstm",
    ),
    (
        "unknown task",
        lambda: edited(lambda d, c: c.update(task="sorting")),
        "run.config_json.task: 'sorting': unknown task (known: copy",
    ),
    (
        "old format",
        lambda: edited(lambda d, c: c.update(format_version=1)),
        "run.config_json.format_version: 1, this code's is 2",
    ),
    ("no curves", lambda: edited(lambda d, c: d.pop("curves")), "seed1-x.json: curves: missing"),
    (
        "run_id tampered",
        lambda: edited(lambda d, c: d["run"].update(run_id="0" * 16)),
        "run.run_id: '0000000000000000' is not the hash of its config_json",
    ),
    (
        "config that cannot build, rehashed",
        lambda: edited(lambda d, c: c["model_params"].update(hidden_size=-1), rehash=True),
        "run.config_json: cannot build its model and task (hidden_size must be an integer >= 1",
    ),
]


@pytest.mark.parametrize("case,content,message", BAD_RUNS, ids=[b[0] for b in BAD_RUNS])
def test_a_bad_run_file_is_one_line(case, content, message, tmp_path, capsys):
    from ntm_bench.benchmarks.harness import reproduce

    path = tmp_path / "seed1-x.json"
    if content is not None:
        data = content()
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    # 25: the published LSTM's first curve point, so the file is what fails, before any training
    assert reproduce.main([str(path), "--steps", "25"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "python -m benchmarks.harness.reproduce: error: "
    )
    assert str(tmp_path) in lines[0] and message in lines[0], lines


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--steps", "0"], "--steps must be at least 1"),
        (["--steps", "x"], "invalid int value"),
        (["--steps", "24"], "retrains no published point of "),
        (["--steps", "24"], ": the first is at step 25"),
    ],
)
def test_bad_steps_are_one_line(argv, message, capsys):
    from ntm_bench.benchmarks.harness import reproduce

    path = sorted((PUBLISHED / "copy" / "lstm").glob("seed*-*.json"))[0]
    try:
        code = reproduce.main([str(path), *argv])
    except SystemExit as exit_info:  # argparse's own errors exit
        code = exit_info.code
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
