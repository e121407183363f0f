"""ntm-bench command line: plan (model x task x seed) runs from a profile, train what the store
does not already hold, evaluate, and print a summary. Only flag parsing and orchestration live
here; the work is in benchmarks/, results/ and reports/.

Exit codes: 0 success, 1 a run failed or `--check` found a regression, 2 bad input.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import NamedTuple


def installation_error() -> str | None:
    """Why this file cannot run as a script here, or None: the ntm_bench package must be
    installed, and be this checkout. A second checkout (a worktree at another commit) run with a
    Python that has the first one installed would train the first one's code and record its
    commit, so it is refused, naming both."""
    spec = importlib.util.find_spec("ntm_bench")
    if spec is None:
        return (
            "the ntm_bench package is not installed in this Python; in the repository: "
            "pip install -c constraints-cpu.txt -e '.[dev]' (README)"
        )
    here = Path(__file__).resolve().parent
    installed = [Path(folder).resolve() for folder in spec.submodule_search_locations]
    if here not in installed:
        return (
            f"this checkout is {here}, but this Python's ntm_bench is {installed[0]}, whose code "
            "would run: install this one into its own environment (pip install -c "
            "constraints-cpu.txt -e '.[dev]'), or run that one's (an installed wheel: ntm-bench)"
        )
    return None


if __name__ == "__main__" and (problem := installation_error()):
    print(f"run_suite.py: error: {problem}", file=sys.stderr)
    sys.exit(2)

from ntm_bench.benchmarks.harness.cli import (  # noqa: E402 (after the check above)
    DEFAULT_STORE,
    UsageError,
    parse,
    program,
)

EXAMPLES = """examples:
  # the main job (= run_suite.py run ...)
  python run_suite.py --models ntm,lstm --tasks all --profile quick
  # convergence regression check (CI; = --profile ci --check)
  python run_suite.py check --profile ci
  # rebuild reports/out/quick/ from the store
  python run_suite.py report --profile quick
  # the published claims, as CI checks them
  python run_suite.py report --profile replicate --published --check
  # refresh results/baselines/ci.json on purpose
  python run_suite.py run --profile ci --update-baseline
  python run_suite.py run --models ntm --tasks copy --seeds 1,2,3 --set train.steps=500
  # new points for finished runs, no retraining
  python run_suite.py evaluate --profile quick --models ntm --at length=200,500
  # our parameter counts beside the paper's
  python run_suite.py params --profile paper --models all
  # the speed suite, rows into the store
  python run_suite.py bench --bench-profile quick --json speed.json
"""


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit code 2, no traceback."""
    print(f"{program()}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def build_plan(args):
    """Load the profile and plan the runs; any problem becomes a one-line error."""
    from ntm_bench.benchmarks.harness.config import ConfigError
    from ntm_bench.benchmarks.harness.plan import parse_seeds, plan_runs

    try:
        profile, models, tasks = selection(args, writes_store=args.command != "params")
        if args.command in ("run", "check"):
            check_report_folder(args, profile.name)
        seeds = parse_seeds(args.seeds)
        return profile, plan_runs(profile, models, tasks, seeds)
    except ConfigError as error:
        fail(str(error))


def selection(args, writes_store: bool):
    """The checks every planning command makes (jobs and threads, the paths it writes, the
    executor, the device), then (profile, models, tasks); ConfigError on bad input."""
    from ntm_bench.benchmarks.harness.config import ConfigError, load_profile
    from ntm_bench.benchmarks.harness.plan import parse_names
    from ntm_bench.models import MODELS
    from ntm_bench.tasks import TASKS

    if args.jobs < 1 or args.threads < 1:
        raise ConfigError(
            f"--jobs and --threads must be at least 1, got {args.jobs} and {args.threads}"
        )
    check_paths(args, writes_store=writes_store)
    check_executor(args)
    check_device(args.device)
    profile = load_profile(args.profile, args.overrides)
    # An empty --models is an error (parse_names), not "all": only a missing flag means all.
    models = parse_names(
        "all" if args.models is None else args.models,
        list(MODELS),
        "model",
        default=list(profile.models) or None,
    )
    tasks = parse_names(args.tasks, list(TASKS), "task", default=list(profile.tasks) or None)
    return profile, models, tasks


def check_paths(args, writes_store: bool = True) -> None:
    """Files where files belong and folders where folders do, and each writable where the
    command writes, before anything is written (`writes_store`: the command writes the store)."""
    from ntm_bench.benchmarks.harness.config import ConfigError
    from ntm_bench.benchmarks.process.destinations import check_destination

    for flag, path, kind in (
        ("--store", args.store, "file"),
        ("--json", args.json, "file"),
        ("--checkpoints", args.checkpoints, "folder"),
        ("--report-dir", args.report_dir, "folder"),
        ("--tensorboard", args.tensorboard, "folder"),
    ):
        if path is None:
            continue
        try:
            check_destination(flag, path, kind, writes_store or flag != "--store")
        except ValueError as error:
            raise ConfigError(str(error)) from None


def check_executor(args) -> None:
    """--executor ray needs Ray installed, and --ray-address goes with it only: found out before
    the store gets its rows, not when the first unit is sent."""
    from ntm_bench.benchmarks.harness.config import ConfigError

    if args.ray_address and args.executor != "ray":
        raise ConfigError("--ray-address goes with --executor ray")
    if args.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError("--executor ray needs Ray: pip install -e '.[cluster]'")


def check_device(device: str) -> None:
    from ntm_bench.benchmarks.harness.config import ConfigError
    from ntm_bench.benchmarks.harness.devices import resolve_device

    try:
        resolve_device(device)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def report_folder(store_path: str, profile: str, out_dir: str | None) -> Path:
    """Where a command's report of `profile` goes: `out_dir` (--report-dir), else beside a store
    that is not the default one, else reports/out/<profile>/."""
    from ntm_bench.reports.build import out_folder

    if out_dir is not None:
        return Path(out_dir)
    if Path(store_path) != Path(DEFAULT_STORE):  # keep a report beside its store
        return Path(store_path).parent / "reports" / profile
    return out_folder(profile)


def check_report_folder(args, profile: str) -> None:
    """A report the command will write at its end (unless --no-report) must be writable: found
    out before the training, not after it."""
    from ntm_bench.benchmarks.harness.config import ConfigError
    from ntm_bench.benchmarks.process.destinations import check_destination

    if args.no_report:
        return
    folder = report_folder(args.store, profile, args.report_dir)
    try:
        check_destination("report folder (--report-dir)", folder, "folder")
    except ValueError as error:
        raise ConfigError(str(error)) from None


def write_report(store_path: str, profile: str, out_dir: str | None) -> bool:
    """Build the HTML report from the store; a problem is reported, not fatal to the suite."""
    from ntm_bench.reports.build import build_report
    from ntm_bench.reports.data import ReportError

    try:
        index = build_report(store_path, profile, report_folder(store_path, profile, out_dir))
    except ReportError as error:
        print(f"report: {error}", file=sys.stderr)
        return False
    print(f"report: {index}")
    return True


def print_claims(store_path: str, profile: str) -> None:
    """The claims table of `profile`'s runs in the store, when any claim's task has runs."""
    from ntm_bench.reports.data import ReportError, load
    from ntm_bench.reports.claims import format_claims_text
    from ntm_bench.reports.verdicts import claims_frame

    try:
        data = load(store_path, profile)
    except ReportError:
        return
    frame = claims_frame(data.runs, data.curves, data.evals)
    if frame.empty:
        return
    if (frame.verdict == "inconclusive").all():
        # a run of a few seeds at reduced sizes decides no claim: say so, and where they are
        # decided, instead of a row of reasons per claim (the report keeps the full table)
        from ntm_bench.benchmarks.harness.published import GRID

        print(
            f"Does the paper replicate? These runs decide none of the {len(frame)} claims "
            "(too few seeds or not the paper's sizes: the reasons are in the report's claims "
            f"table). The published grid decides them: results/published/{GRID}/claims.md, "
            f"or `python run_suite.py report --profile {GRID} --published`."
        )
        return
    print(format_claims_text(frame))


def published_report(profile: str, args) -> int:
    """--report --published: a fresh store from results/published/<profile>/, its report, the
    claims table printed and, with --check / --update-baseline, compared with / written to the
    committed table."""
    from ntm_bench.reports.build import OUT_ROOT
    from ntm_bench.reports.data import load
    from ntm_bench.reports.verdicts import (
        CSV,
        changed_verdicts,
        claims_frame,
        update_readme,
        write_table,
    )
    from ntm_bench.benchmarks.harness.run_document import PublishedError
    from ntm_bench.benchmarks.harness.published import GRID, ROOT, rebuild
    from ntm_bench.results.store import Store

    try:
        store_path = rebuild(profile, OUT_ROOT / "published" / f"{profile}.sqlite")
    except (FileNotFoundError, PublishedError) as error:  # a bad file is named before any write
        fail(str(error))
    # The profile's planned runs that are not published yet stand as pending: a claim over them
    # is inconclusive ("2 of 5 seeds pending"), not decided on the seeds that happen to be done.
    args.models, args.tasks, args.seeds, args.profile = "all", "all", None, profile
    _, specs = build_plan(args)
    store = Store(store_path)
    for spec in specs:
        store.register(spec.run_id, spec.model, spec.task, spec.seed, spec.profile, spec.config())
    store.close()
    ok = write_report(
        str(store_path), profile, args.report_dir or str(OUT_ROOT / f"{profile}-published")
    )
    data = load(store_path, profile)
    frame = claims_frame(data.runs, data.curves, data.evals)
    from ntm_bench.reports.claims import format_claims_text

    print(format_claims_text(frame))
    if args.update_baseline:
        written = write_table(frame, ROOT / profile)
        figure = Path(args.report_dir or OUT_ROOT / f"{profile}-published") / "figures"
        if ok and (figure / "verdicts.png").is_file():
            # the README shows it beside the table
            shutil.copyfile(figure / "verdicts.png", ROOT / profile / "verdicts.png")
            written.append(ROOT / profile / "verdicts.png")
        print("claims table written to " + ", ".join(map(str, written)))
        shown = f"results/published/{profile}/verdicts.png"
        if profile == GRID and update_readme(frame, Path(__file__).with_name("README.md"), shown):
            print("and to README.md")
    if args.check:
        changed = changed_verdicts(frame, ROOT / profile / CSV)
        for line in changed:
            print(f"verdict changed: {line}", file=sys.stderr)
        if changed:
            return 1
        print(f"claims check: all {len(frame)} verdicts as in {ROOT / profile / CSV}")
    return 0 if ok else 2


class Request(NamedTuple):
    """What `evaluate` was asked for, checked."""

    profile: str  # the profile's name
    points: list  # the points to score (--at, --joint)
    shape: dict | None  # the memory picture's sizes (--trace-at)
    seeds: list | None


def evaluate(args) -> int:
    """Score finished runs at new points from their kept weights
    (benchmarks/harness/evaluate_kept.py), or draw their memory pictures at a size; then redraw the
    report."""
    from ntm_bench.benchmarks.harness.config import ConfigError
    from ntm_bench.benchmarks.harness.evaluate_kept import (
        chosen_runs,
        evaluate_runs,
        trace_pictures,
    )
    from ntm_bench.results.schema import StoreError
    from ntm_bench.results.store import Store

    request = evaluate_request(args)
    if not Path(args.store).is_file():
        fail(f"no results store at {args.store}: run a suite first")
    try:
        store = Store(args.store)
    except StoreError as error:
        fail(str(error))
    names = lambda text: (
        None if text in (None, "all") else [t.strip() for t in text.split(",") if t.strip()]
    )
    runs = chosen_runs(
        store, request.profile, names(args.models), names(args.tasks), request.seeds, args.run_id
    )
    if runs.empty:
        fail(f"no finished runs of profile {request.profile!r} in {args.store} match the filters")
    try:
        if request.shape is not None:
            folder = Path(args.report_dir or Path(args.store).parent / "reports" / request.profile)
            pictures = trace_pictures(
                store, runs, request.shape, folder / "evaluate", args.checkpoints
            )
            for path in pictures:
                print(f"memory picture: {path}")
            return 0
        outcome = evaluate_runs(store, runs, request.points, args.checkpoints)
    except ConfigError as error:
        fail(str(error))
    for line in outcome.skipped:
        print(f"skipped: {line}", file=sys.stderr)
    print(
        f"{outcome.added} evaluation rows added for {outcome.scored} of {len(runs)} runs in "
        f"{args.store}"
    )
    if not args.no_report and outcome.added:
        write_report(args.store, request.profile, args.report_dir)
    return 0 if outcome.scored else 1


def evaluate_request(args) -> Request:
    """evaluate's flags, checked before the store is opened: one line and exit 2 on bad input."""
    from ntm_bench.benchmarks.harness.config import ConfigError, resolve_path
    from ntm_bench.benchmarks.harness.plan import parse_seeds
    from ntm_bench.benchmarks.harness.evaluate_kept import parse_points, parse_shape

    try:
        check_paths(args)
        name = resolve_path(args.profile).stem
        check_report_folder(args, name)
        points = parse_points(args.at, args.joint)
        shape = parse_shape(args.trace_at) if args.trace_at is not None else None
        if not points and shape is None:
            raise ConfigError(
                "evaluate needs --at, --joint or --trace-at (e.g. --at length=200,500)"
            )
        return Request(name, points, shape, parse_seeds(args.seeds))
    except (ConfigError, ValueError) as error:
        fail(str(error))


def bench(args) -> int:
    """The speed suite: the table (benchmarks/speed_suite/bench.py, or interleaved.py) printed and
    stored, or with --versus or --cost one model against a git revision (versus.py) or what a
    profile's runs cost (cost.py), printed; every mode times its contenders in turns."""
    if args.versus is not None or args.cost is not None:
        return bench_mode(args)
    from ntm_bench.benchmarks.harness.config import ConfigError
    from ntm_bench.benchmarks.harness.plan import parse_names
    from ntm_bench.benchmarks.speed_suite.bench import run_bench
    from ntm_bench.benchmarks.speed_suite.checks import check_destinations
    from ntm_bench.benchmarks.speed_suite.output import format_table
    from ntm_bench.models import MODELS

    try:
        check_paths(args)
        models = parse_names("all" if args.models is None else args.models, list(MODELS), "model")
        check_device(args.device)
        # --threads, and a store that opens and takes a write (last: opening creates it), now
        # rather than after minutes of measuring
        check_destinations(args.store, None, args.threads)
    except ConfigError as error:
        fail(str(error))
    if args.bench_profile == "interleaved":
        from ntm_bench.benchmarks.speed_suite.interleaved import format_pairs, run_interleaved

        rows = run_interleaved(models, args.device, args.store, args.json, threads=args.threads)
        print(format_table(rows))
        print(format_pairs(rows))
    else:
        rows = run_bench(
            models,
            args.device,
            args.store,
            args.json,
            profile=args.bench_profile,
            threads=args.threads,
        )
        print(format_table(rows))
    print(f"{len(rows)} rows in {args.store}" + (f" and {args.json}" if args.json else ""))
    return 0


def bench_mode(args) -> int:
    """`bench --versus REV` or `bench --cost PROFILE`, through the module's own command line (its
    checks and errors, under this program's name)."""
    if args.versus is not None and args.cost is not None:
        fail("--versus and --cost are separate modes of bench: give one")
    if args.json is not None:
        fail("--json writes the table's rows: --versus and --cost print theirs")
    prog = f"{program()} bench"
    if args.versus is not None:
        from ntm_bench.benchmarks.speed_suite.versus import main as versus

        return versus([args.versus, "--models", args.models or "ntm,dnc"], prog)
    from ntm_bench.benchmarks.speed_suite.cost import main as cost

    return cost(["--profile", args.cost, "--models", args.models or "all"], prog)


def main(argv=None) -> int:
    try:
        args = parse(
            list(sys.argv[1:] if argv is None else argv), __doc__.split("\n\n")[0], EXAMPLES
        )
    except UsageError as error:
        fail(str(error))
    if args.command == "bench":
        return bench(args)
    if args.command == "evaluate":
        return evaluate(args)
    if args.command == "report":
        return report(args)
    if args.command == "sweep":
        return sweep(args)
    profile, specs = build_plan(args)
    if args.command == "params":
        note_shadowed(profile)
        return params(specs)
    return run(args, profile, specs)


def report(args) -> int:
    """The report command: the HTML page from a store, or the claims table from the published
    results (--published)."""
    from ntm_bench.benchmarks.harness.config import ConfigError, resolve_path

    try:
        check_paths(args, writes_store=False)
        name = resolve_path(args.profile).stem
    except ConfigError as error:
        fail(str(error))
    if args.published:
        return published_report(name, args)
    if not Path(args.store).exists():
        fail(f"no results store at {args.store}: run a suite first")
    return 0 if write_report(args.store, name, args.report_dir) else 2


def note_shadowed(profile) -> None:
    """One note per --set override that some runs do not take (Profile.shadowed), once the
    command's input is known good: a bad input's error stays the one line on stderr."""
    for assignment, keys in profile.shadowed.items():
        print(
            f"note: --set {assignment} does not reach the runs of {', '.join(keys)}, which "
            "the profile states more specifically; --set those keys to change them",
            file=sys.stderr,
        )


def params(specs) -> int:
    """The params command: our parameter counts beside the paper's; nothing is trained."""
    import pandas as pd

    from ntm_bench.benchmarks.harness.summary import parameter_table

    table = parameter_table(specs)
    # as text, "-" where the paper gives no count: to_string's na_rep and formatters skip
    # a column that is missing throughout (None or <NA>, by its dtype)
    for column, form in (("paper", str), ("ours / paper", lambda v: f"{v:.2f}")):
        table[column] = ["-" if pd.isna(v) else form(v) for v in table[column]]
    print(table.to_string(index=False))
    print(
        "paper: Graves et al. 2014, Tables 1-3 (its NTM counts cannot be reproduced exactly "
        "from its description)"
    )
    return 0


def run(args, profile, specs) -> int:
    """The run and check commands: register the planned runs, train what is missing, print the
    summary and the claims, write the report, and compare with the baseline (check)."""

    store = suite_store(args, profile)
    note_shadowed(profile)
    if not train_missing(args, profile.name, specs, store):
        return 130
    return conclude(args, profile, specs, store)


def train_missing(args, name: str, specs, store) -> bool:
    """Register `specs` in the store and train those it does not hold; False on Ctrl-C."""
    from ntm_bench.benchmarks.harness.executors import WorkerOptions
    from ntm_bench.benchmarks.harness.suite import run_specs
    from ntm_bench.benchmarks.harness.trained import default_checkpoints

    for spec in specs:
        store.register(spec.run_id, spec.model, spec.task, spec.seed, spec.profile, spec.config())
    todo = [s for s in specs if store.status(s.run_id) not in ("done", "diverged")]
    print(
        f"{name}: {len(specs)} runs planned, {len(specs) - len(todo)} already in "
        f"{args.store}, {len(todo)} to train",
        flush=True,
    )
    checkpoints = str(args.checkpoints or default_checkpoints(args.store))
    try:
        run_specs(
            store,
            todo,
            WorkerOptions(checkpoints, args.device, args.threads, args.tensorboard),
            jobs=args.jobs,
            executor=args.executor,
            ray_address=args.ray_address,
            log=lambda line: print(line, flush=True),
        )
    except KeyboardInterrupt:
        print(
            "interrupted: finished runs are in the store, unfinished ones resume from their "
            "checkpoints",
            file=sys.stderr,
        )
        return False
    return True


def sweep(args) -> int:
    """The sweep command: the profile's learning-rate sweep (benchmarks/harness/sweep.py) trained
    into the store, or read from the published runs (--published), and its table: which rate each
    (model, task) gets. --check: exit 1 where the profile states another rate than the sweep
    chose; --update-baseline (with --published): write the published table."""
    from ntm_bench.benchmarks.harness.config import ConfigError
    from ntm_bench.benchmarks.harness.sweep import (
        CSV,
        SUFFIX,
        disagreements,
        format_table,
        sweep_specs,
        sweep_table,
    )
    from ntm_bench.benchmarks.harness.run_document import PublishedError
    from ntm_bench.benchmarks.harness.published import ROOT, rebuild
    from ntm_bench.results.schema import StoreError
    from ntm_bench.results.store import Store

    try:
        profile, models, tasks = selection(args, writes_store=not args.published)
        specs = sweep_specs(profile, models, tasks)
    except ConfigError as error:
        fail(str(error))
    name = profile.name + SUFFIX
    if args.published:
        from ntm_bench.reports.build import OUT_ROOT

        try:
            store = Store(rebuild(name, OUT_ROOT / "published" / f"{name}.sqlite"))
        except (FileNotFoundError, PublishedError) as error:
            fail(str(error))
    else:
        try:
            store = Store(args.store)
        except StoreError as error:
            fail(str(error))
        note_shadowed(profile)
        if not train_missing(args, name, specs, store):
            return 130
    table = sweep_table(profile, specs, store.runs())
    print(format_table(table))
    if args.update_baseline:
        path = ROOT / name / CSV
        table.to_csv(path, index=False)
        print(f"sweep table written to {path}")
    if args.check:
        wrong = disagreements(table)
        for line in wrong:
            print(f"sweep check: {line}", file=sys.stderr)
        if wrong:
            return 1
        print(f"sweep check: the profile states every chosen rate ({int(table.chosen.sum())})")
    return 0


def suite_store(args, profile):
    """The store a suite writes, opened after the baseline `check` will need is known readable
    (before training: a baseline it cannot read costs nothing)."""
    from ntm_bench.benchmarks.harness.baseline import load_baseline
    from ntm_bench.benchmarks.harness.config import ConfigError
    from ntm_bench.benchmarks.process.faults import maybe_kill
    from ntm_bench.results.schema import StoreError
    from ntm_bench.results.store import Store

    if args.check and not args.update_baseline:
        try:
            load_baseline(profile.name)
        except ConfigError as error:
            fail(str(error))
    try:
        return Store(args.store, before_commit=lambda: maybe_kill("store"))
    except StoreError as error:
        fail(str(error))


def conclude(args, profile, specs, store) -> int:
    """After a suite: the summary and the claims of the planned runs, the report, the baseline
    (written or checked); the exit code (1 if a run failed or the check found a regression)."""
    from ntm_bench.benchmarks.harness.baseline import check_baseline, write_baseline
    from ntm_bench.benchmarks.harness.summary import print_summary

    ids = [s.run_id for s in specs]
    runs = store.runs()
    runs = runs[runs.run_id.isin(ids)]
    print_summary(runs)
    print_claims(args.store, profile.name)
    code = 1 if (runs.status == "failed").any() else 0
    if not args.no_report:
        write_report(args.store, profile.name, args.report_dir)
    if args.update_baseline:
        print(f"baseline written to {write_baseline(profile.name, runs)}")
    if args.check:
        code = max(code, check_baseline(profile.name, runs, specs))
    return code


def console() -> int:
    """`python run_suite.py` and the `ntm-bench` console script: main, with Ctrl-C and a closed
    pipe as exit codes instead of tracebacks."""
    try:
        return main()
    except KeyboardInterrupt:
        # Ctrl-C outside training (which handles its own): during start-up, planning or the
        # summary; nothing half-written is left, since the store commits whole transactions
        print(f"{program()}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader (`| head`) has gone: no traceback, and no second error when Python flushes
        # stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(console())
