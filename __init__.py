"""ntm-bench: Neural Turing Machines, LSTMs and DNCs on the algorithmic tasks of Graves et al.
2014, trained from fixed seeds into a results store that the reports read.

Installed, this is the one top-level package the distribution carries (`ntm_bench`), so that a
project of its own with a `models` or `tasks` package can use ours beside it. In the repository
the package is the repository's root (pyproject.toml maps `ntm_bench` to `.`), so the folders keep
the names the project is known by. Its layers, top to bottom (pyproject.toml [tool.importlinter]
checks them):

- run_suite: the command line (`python run_suite.py`, or the `ntm-bench` console script);
- benchmarks: the harness: profiles, planning, training, evaluation, publishing, speed;
- reports: figures, tables and the paper's claims, read from the store alone;
- results: the SQLite store of runs, curves and evaluations, a leaf;
- models and tasks: the model and task registries, neither importing the other.
"""
