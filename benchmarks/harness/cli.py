"""The command line's grammar: subcommands, each with its own options and --help, and the older
flag form, which stays valid and means the same.

    run_suite.py run|report|bench|evaluate|check|params [options]
    run_suite.py [options]                 the flag form: --report, --bench, --params, --check pick
                                           the command

Every option is defined once (OPTIONS); a command lists the ones it takes (COMMANDS). The result
of parsing is one Namespace with every option's attribute (its default where the command does
not take it) and `command`, so run_suite.py has one handler per command whichever form was used.
Modes that cannot go together (--bench with --report, --check with --params, ...) are errors, not
one silently winning.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import sys
from pathlib import Path

DEFAULT_STORE = "results/results.sqlite"
PROFILE_FILES = Path(__file__).parents[1] / "profiles"  # named in --help


def program() -> str:
    """The name the suite's command line was called by, for usage and errors: the `ntm-bench`
    console script, or `run_suite.py` (also under `python -m ntm_bench.run_suite`)."""
    return "ntm-bench" if Path(sys.argv[0]).name == "ntm-bench" else "run_suite.py"


class UsageError(ValueError):
    """Flags that contradict each other; the message is one line."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: `prog: error: message (prog --help)` and exit code 2, as
    every other bad input here ends, instead of the usage block and then the error. Every command
    line of the project (run_suite.py and the `python -m` tools) parses with it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def bad_input(prog: str, message) -> int:
    """Bad input found after parsing, as Parser.error reports it: `prog: error: message` on one
    line of stderr (a message of several lines joined); returns the exit code 2."""
    print(f"{prog}: error: {' '.join(str(message).splitlines())}", file=sys.stderr)
    return 2


OPTIONS = {
    "models": (
        ("--models",),
        dict(default=None, help="comma list of models, or 'all' (default: the profile's)"),
    ),
    "tasks": (
        ("--tasks",),
        dict(default="all", help="comma list of tasks, or 'all' (default: the profile's)"),
    ),
    "seeds": (
        ("--seeds",),
        dict(default=None, help="comma list of integer seeds (default: the profile's)"),
    ),
    "profile": (
        ("--profile",),
        dict(
            default="quick",
            help="a profile in benchmarks/profiles/ ("
            + ", ".join(sorted(p.stem for p in PROFILE_FILES.glob("*.yaml")))
            + ") or a path to a YAML file",
        ),
    ),
    "store": (
        ("--store",),
        dict(default=DEFAULT_STORE, help="SQLite results store (created if missing)"),
    ),
    "checkpoints": (
        ("--checkpoints",),
        dict(
            default=None,
            help="checkpoint and kept-weights folder (default: checkpoints/ beside the store)",
        ),
    ),
    "device": (("--device",), dict(default="cpu", help="torch device: cpu, cuda or cuda:N")),
    "jobs": (
        ("--jobs",),
        dict(type=int, default=2, help="runs trained in parallel worker processes (default 2)"),
    ),
    "threads": (
        ("--threads",),
        dict(type=int, default=1, help="intra-op threads per run (default 1; see README)"),
    ),
    "executor": (
        ("--executor",),
        dict(
            choices=("local", "ray"),
            default="local",
            help="local worker processes (default) or Ray tasks (pip install -e '.[cluster]')",
        ),
    ),
    "ray_address": (
        ("--ray-address",),
        dict(
            default=None,
            help="Ray cluster address (e.g. ray://head:10001); "
            "default: a local Ray with --jobs CPUs",
        ),
    ),
    "tensorboard": (
        ("--tensorboard",),
        dict(
            default=None,
            metavar="DIR",
            help="also write live training curves as TensorBoard events under DIR",
        ),
    ),
    "overrides": (
        ("--set",),
        dict(
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a profile key, e.g. --set train.lr=1e-4 (repeatable); runs whose task "
            "or model states the key itself keep that value, and a note names them",
        ),
    ),
    "no_report": (
        ("--no-report",),
        dict(action="store_true", help="do not write the report afterwards"),
    ),
    "report_dir": (
        ("--report-dir",),
        dict(
            default=None,
            help="report folder (default: reports/out/<profile>/ for the "
            "default store, else reports/<profile>/ beside it)",
        ),
    ),
    "published": (
        ("--published",),
        dict(
            action="store_true",
            help="report from the results published in the "
            "repository (results/published/<profile>/)",
        ),
    ),
    "check": (
        ("--check",),
        dict(
            action="store_true",
            help="compare convergence with results/baselines/<profile>.json "
            "(exit 1 on a regression); with --published: the claims' "
            "verdicts with the committed table",
        ),
    ),
    "update_baseline": (
        ("--update-baseline",),
        dict(
            action="store_true",
            help="write the baseline (with --published: the committed claims table)",
        ),
    ),
    "bench_profile": (
        ("--bench-profile",),
        dict(
            default="full",
            choices=("quick", "full", "interleaved"),
            help="the table's size: quick (batch 1 and 16), full (default: "
            "batch 1/16/256, memory and length sweeps) or interleaved "
            "(every model of a batch size in turns with every other: ratios "
            "between models)",
        ),
    ),
    "versus": (
        ("--versus",),
        dict(
            default=None,
            metavar="REV",
            help="instead of the table: each of --models (default ntm,dnc) now against its own "
            "code at git revision REV, timed in turns, now / then per mode and batch "
            "(benchmarks/speed_suite/versus.py; more options there); nothing stored",
        ),
    ),
    "cost": (
        ("--cost",),
        dict(
            default=None,
            metavar="PROFILE",
            help="instead of the table: one training step of each (model, task) of PROFILE as "
            "its run trains, timed in turns, sequences/s per JSON line (sets budgets; "
            "benchmarks/speed_suite/cost.py); nothing stored",
        ),
    ),
    "json": (
        ("--json",),
        dict(default=None, metavar="FILE", help="also write the speed rows to FILE"),
    ),
    "at": (
        ("--at",),
        dict(
            action="append",
            default=[],
            metavar="AXIS=N[,N]",
            help="generalization points to add, e.g. --at length=200,500 (repeatable)",
        ),
    ),
    "joint": (
        ("--joint",),
        dict(
            action="append",
            default=[],
            metavar="AXIS=N,AXIS=N",
            help="a joint point to add, e.g. --joint length=20,repeats=10 (repeatable)",
        ),
    ),
    "trace_at": (
        ("--trace-at",),
        dict(
            default=None,
            metavar="AXIS=N[,AXIS=N]",
            help="draw each chosen run's memory picture at this size instead",
        ),
    ),
    "run_id": (
        ("--run-id",),
        dict(action="append", default=[], metavar="ID", help="only these runs (repeatable)"),
    ),
}

# the profile a command uses without --profile, where it is not "quick"
PROFILES = {"check": "ci", "sweep": "replicate_v2"}
TRAIN = [
    "models",
    "tasks",
    "seeds",
    "profile",
    "store",
    "checkpoints",
    "device",
    "jobs",
    "threads",
    "executor",
    "ray_address",
    "tensorboard",
    "overrides",
    "no_report",
    "report_dir",
]
COMMANDS = {
    "run": (
        "train every planned run the store does not hold, then summary, claims and report (the "
        "default)",
        TRAIN + ["check", "update_baseline"],
    ),
    "check": (
        "the convergence regression check: run --profile (default ci), then compare with its "
        "baseline",
        TRAIN + ["update_baseline"],
    ),
    "report": (
        "rebuild the report of --profile from the store (or from the published results); train "
        "nothing",
        ["profile", "store", "report_dir", "published", "check", "update_baseline"],
    ),
    "bench": (
        "the speed suite, every mode timed in turns: the table (rows into the store's speed "
        "table; each model in turns with a reference LSTM), --versus or --cost",
        ["models", "device", "threads", "bench_profile", "json", "store", "versus", "cost"],
    ),
    "evaluate": (
        "score finished runs at new generalization points from their kept weights (no retraining)",
        [
            "profile",
            "store",
            "checkpoints",
            "models",
            "tasks",
            "seeds",
            "run_id",
            "at",
            "joint",
            "trace_at",
            "report_dir",
            "no_report",
        ],
    ),
    "sweep": (
        "the profile's learning-rate sweep (default replicate_v2): train what the store lacks, "
        "print which rate each (model, task) gets",
        [o for o in TRAIN if o not in ("seeds", "tensorboard", "no_report", "report_dir")]
        + ["published", "check", "update_baseline"],
    ),
    "params": (
        "our parameter count per planned (task, model) beside the paper's; train nothing",
        ["profile", "models", "tasks", "seeds", "overrides"],
    ),
}
MODES = {
    "report": "--report",
    "bench": "--bench",
    "params": "--params",
}  # the flag form's command flags


def add(parser: argparse.ArgumentParser, name: str, **change) -> None:
    flags, kwargs = OPTIONS[name]
    parser.add_argument(*flags, **{**kwargs, **change})


def defaults() -> dict:
    """Every option's default, so each command's Namespace has every attribute."""
    return {
        kwargs.get("dest", name): kwargs.get(
            "default", False if kwargs.get("action") == "store_true" else None
        )
        for name, (_, kwargs) in OPTIONS.items()
    }


def command_parser(name: str, epilog: str) -> argparse.ArgumentParser:
    summary, options = COMMANDS[name]
    parser = Parser(
        prog=f"{program()} {name}",
        description=summary,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option in options:
        add(
            parser,
            option,
            **({"default": PROFILES[name]} if option == "profile" and name in PROFILES else {}),
        )
    return parser


def flag_parser(description: str, epilog: str) -> argparse.ArgumentParser:
    """The flag form: every option, and --report / --bench / --params choosing the command."""
    commands = "\n".join(f"  {name:<9} {summary}" for name, (summary, _) in COMMANDS.items())
    parser = Parser(
        prog=program(),
        description=f"{description}\n\ncommands ({program()} COMMAND --help):\n{commands}",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option in OPTIONS:
        if option not in ("at", "joint", "trace_at", "run_id"):
            add(parser, option)
    for mode, flag in MODES.items():
        parser.add_argument(
            flag, action="store_true", help=f"the {mode} command: {COMMANDS[mode][0]}"
        )
    parser.add_argument("--version", action="version", version=f"{program()} {installed_version()}")
    return parser


def installed_version() -> str:
    """The installed distribution's version (pyproject.toml's), or why there is none."""
    try:
        return metadata.version("ntm-bench")
    except metadata.PackageNotFoundError:
        return "(not installed: pip install -e . in the repository)"


def resolve_mode(args: argparse.Namespace) -> str:
    """The command the flag form asks for; UsageError when its flags contradict each other."""
    chosen = [mode for mode in MODES if getattr(args, mode)]
    if len(chosen) > 1:
        raise UsageError(
            f"{' and '.join(MODES[m] for m in chosen)} are separate commands: give one "
            f"({program()} {'|'.join(chosen)})"
        )
    command = chosen[0] if chosen else "run"
    if args.published and command != "report":
        raise UsageError(
            "--published goes with --report (it rebuilds a report from the published results)"
        )
    taken = set(COMMANDS[command][1])
    for flag, name in (
        ("--check", "check"),
        ("--update-baseline", "update_baseline"),
        ("--json", "json"),
        ("--versus", "versus"),
        ("--cost", "cost"),
    ):
        if getattr(args, name) and name not in taken:
            raise UsageError(f"{flag} does not go with {MODES.get(command, 'training')}")
    return command


def rest(command: str | None) -> argparse.Namespace:
    """The defaults of the options `command` does not take (argparse fills in its own)."""
    taken = (
        {OPTIONS[o][1].get("dest", o) for o in COMMANDS[command][1]} if command else set(OPTIONS)
    )
    return argparse.Namespace(**{k: v for k, v in defaults().items() if k not in taken})


def parse(argv: list[str], description: str, epilog: str) -> argparse.Namespace:
    """The Namespace of either form, with `command` set."""
    if argv and argv[0] in COMMANDS:
        args = command_parser(argv[0], epilog).parse_args(argv[1:], rest(argv[0]))
        args.command = argv[0]
        args.check = args.check or args.command == "check"
    else:
        args = flag_parser(description, epilog).parse_args(argv, rest(None))
        args.command = resolve_mode(args)
    if args.command == "sweep" and args.update_baseline and not args.published:
        raise UsageError(
            "sweep --update-baseline needs --published (it writes the published table)"
        )
    if args.command == "report" and (args.check or args.update_baseline) and not args.published:
        raise UsageError(
            "--report with --check or --update-baseline needs --published (the claims table); "
            "the convergence check trains: run_suite.py check"
        )
    return args
