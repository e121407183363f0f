"""A table's files: every table of the report is written three ways, CSV with the raw numbers,
Markdown and LaTeX with the formatted text (the same text the page shows).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def to_markdown(frame: pd.DataFrame) -> str:
    cells = lambda values: "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"
    lines = [cells(frame.columns), "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + [cells(row) for row in frame.itertuples(index=False)]) + "\n"


LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "−": "$-$",
    "≈": r"$\approx$",
}


def latex_escape(text) -> str:
    return "".join(LATEX_ESCAPES.get(c, c) for c in str(text))


def to_latex(frame: pd.DataFrame, caption: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{" + "l" * len(frame.columns) + "}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in frame.columns) + r" \\",
        r"\midrule",
    ]
    lines += [
        " & ".join(latex_escape(v) for v in row) + r" \\" for row in frame.itertuples(index=False)
    ]
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{latex_escape(caption)}}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def write_table(
    raw: pd.DataFrame, shown: pd.DataFrame, out_dir: Path, name: str, caption: str
) -> dict:
    """`raw` as tables/<name>.csv, `shown` as .md and .tex; returns {format: relative path}."""
    folder = Path(out_dir) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    raw.to_csv(folder / f"{name}.csv", index=False)
    (folder / f"{name}.md").write_text(f"{caption}\n\n{to_markdown(shown)}")
    (folder / f"{name}.tex").write_text(to_latex(shown, caption))
    return {kind: f"tables/{name}.{kind}" for kind in ("csv", "md", "tex")}
