"""Build the report of one profile from a results store: figures, tables and index.html.

    build_report(store_path, profile, out_dir)

which `run_suite.py report` calls (the command line is that one). Everything comes from
`results.store` loaders; nothing here imports training code. The output folder
(default reports/out/<profile>/) gets index.html, figures/ (PNG for the page, SVG for papers) and
tables/ (CSV, Markdown, LaTeX); files from an earlier build there are replaced.
"""

from __future__ import annotations

import re
from pathlib import Path

from ntm_bench.reports import html
from ntm_bench.reports.data import ReportError, load
from ntm_bench.reports.reference import load_reference
from ntm_bench.reports.sections import page_sections
from ntm_bench.reports.style import TASK_ORDER, model_colors, order

OUT_ROOT = Path("reports") / "out"  # under the working directory, like the default store
GENERATED = {"figures": (".png", ".svg"), "tables": (".csv", ".md", ".tex")}


def prepare(out_dir: Path) -> None:
    """Create the folders and remove what an earlier build generated there (only our own kinds of
    file)."""
    for folder, suffixes in GENERATED.items():
        try:
            (out_dir / folder).mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a file on the path, or a folder we may not write
            raise ReportError(f"cannot write the report in {out_dir}: {error.strerror}") from None
        for path in (out_dir / folder).iterdir():
            if path.is_file() and path.suffix in suffixes:
                path.unlink()


def out_folder(profile: str) -> Path:
    """A profile's report folder when none is given: reports/out/<profile>/, the name made safe."""
    return OUT_ROOT / re.sub(r"[^\w.-]+", "_", profile)


def build_report(
    store_path: str | Path, profile: str | None = None, out_dir: str | Path | None = None
) -> Path:
    """Build the report of `profile` (None: the store's only profile) into `out_dir` (default
    reports/out/<profile>/) and return the path of its index.html. Raises ReportError when the
    store is missing or empty or has no runs of the profile."""
    data = load(store_path, profile)
    out_dir = Path(out_dir) if out_dir is not None else out_folder(data.profile)
    prepare(out_dir)
    reference = load_reference()
    colors = model_colors(
        set(data.runs.model) | set(data.speed.model if not data.speed.empty else [])
    )
    tasks = order(data.runs.task.unique(), known=TASK_ORDER)
    sections = page_sections(data, reference, colors, tasks, out_dir, store_path)
    index = out_dir / "index.html"
    subtitle = (
        f"Profile {data.profile}: {len(data.runs)} runs, {len(tasks)} tasks, "
        f"{data.runs.model.nunique()} models. Costs are in bits per sequence throughout."
    )
    index.write_text(
        html.page(f"ntm-bench report: {data.profile}", sections, subtitle), encoding="utf-8"
    )
    return index
