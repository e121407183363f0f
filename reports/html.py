"""index.html: one self-contained page (inline CSS, relative links, no scripts, nothing fetched).

`page()` takes sections as (anchor, heading, body HTML) and returns the document; the helpers
render figures, tables and the provenance of the runs. Every text from the store is escaped.
"""

from __future__ import annotations

import datetime
import html
import json

import pandas as pd

from ntm_bench.reports.style import Saved, model_label, task_label

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1400px;
       padding: 0 24px 48px; color: #222; }
h1 { margin-top: 28px; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 40px; }
nav a { margin-right: 14px; }
figure { margin: 18px 0 30px; } figure img { max-width: min(100%, 1150px); border: 1px solid #eee; }
figcaption { color: #444; font-size: 14px; max-width: 1100px; }
table { border-collapse: collapse; font-size: 13px; margin: 10px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; font-size: 14px; max-width: 1100px; } .bad { color: #a40000; }
code { background: #f4f4f4; padding: 1px 4px; }
"""

esc = html.escape


def table(frame: pd.DataFrame, numeric: tuple[str, ...] = ()) -> str:
    """`frame` as an HTML table; `numeric` columns right-aligned."""
    head = "".join(f"<th>{esc(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = [
            f'<td class="num">{esc(str(v))}</td>' if c in numeric else f"<td>{esc(str(v))}</td>"
            for c, v in zip(frame.columns, row)
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(saved: Saved) -> str:
    """The PNG, linked to its SVG, with its caption."""
    return (
        f'<figure id="{esc(saved.png.rsplit("/", 1)[-1][:-4])}"><a href="{esc(saved.svg)}">'
        f'<img src="{esc(saved.png)}" alt="{esc(saved.title)}"></a>'
        f'<figcaption>{esc(saved.caption)} <a href="{esc(saved.png)}">PNG</a> · '
        f'<a href="{esc(saved.svg)}">SVG</a></figcaption></figure>'
    )


def downloads(paths: dict) -> str:
    names = {"csv": "CSV", "md": "Markdown", "tex": "LaTeX"}
    return (
        '<p class="note">Files: '
        + " · ".join(f'<a href="{esc(p)}">{names.get(k, k)}</a>' for k, p in paths.items())
        + "</p>"
    )


def note(text: str, bad: bool = False) -> str:
    return f'<p class="note{" bad" if bad else ""}">{esc(text)}</p>'


def values_with_counts(series: pd.Series) -> str:
    """'a (3), b (1)' of the non-null values, most frequent first; 'not recorded' if none."""
    counts = series.dropna().astype(str).value_counts()
    return ", ".join(f"{v} ({n} runs)" for v, n in counts.items()) or "not recorded"


def when(seconds) -> str:
    if seconds is None or pd.isna(seconds):
        return "n/a"
    return datetime.datetime.fromtimestamp(float(seconds), tz=datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


def provenance(runs: pd.DataFrame, store_path: str, profile: str) -> str:
    """Where the numbers come from: profile, seeds, devices, threads, torch versions, git shas."""
    statuses = ", ".join(f"{s} {n}" for s, n in runs.status.value_counts().items())
    rows = [
        ("results store", str(store_path)),
        ("profile", profile),
        ("runs", f"{len(runs)} ({statuses})"),
        ("tasks", ", ".join(sorted(runs.task.unique()))),
        ("models", ", ".join(sorted(runs.model.unique()))),
        ("seeds", ", ".join(str(s) for s in sorted(runs.seed.unique()))),
        ("devices", values_with_counts(runs.device)),
        ("processors", values_with_counts(runs.fingerprint_json.map(processor))),
        ("threads per run", values_with_counts(runs.threads.astype("Int64"))),
        ("torch versions", values_with_counts(runs.torch_version)),
        ("git shas", values_with_counts(runs.git_sha)),
        ("runs started", f"{when(runs.started_at.min())} to {when(runs.started_at.max())}"),
        (
            "training wall time (sum)",
            f"{runs.wall_s.sum() / 3600:.2f} h" if runs.wall_s.notna().any() else "n/a",
        ),
    ]
    return table(pd.DataFrame(rows, columns=["", "value"]))


def processor(fingerprint_json) -> str:
    """A run's processor as its fingerprint names it ("Intel(R) Xeon(R) ... (AVX512, mkl)"):
    runs agree bit for bit only on the same one."""
    if not isinstance(fingerprint_json, str):
        return "not recorded"
    found = json.loads(fingerprint_json)
    where = found.get("gpu") or found.get("cpu", "unknown")
    return f"{where} ({found.get('capability')}, {found.get('blas')})"


def mixed_configs(runs: pd.DataFrame) -> list[str]:
    """Warnings for (task, model) pairs whose runs differ in more than the seed."""
    warnings = []
    for (task, model), group in runs.groupby(["task", "model"]):
        configs = set()
        for text in group.config_json:
            config = json.loads(text)
            config.pop("seed", None)
            configs.add(json.dumps(config, sort_keys=True))
        if len(configs) > 1:
            warnings.append(
                f"{task_label(task)} / {model_label(model)}: {len(configs)} different "
                "configurations (e.g. --set overrides) are pooled in the statistics below."
            )
    return warnings


def problems(runs: pd.DataFrame) -> str:
    """The runs that did not finish: diverged or failed with their error; pending or running."""
    stopped = runs[runs.status.isin(["diverged", "failed", "running", "pending"])]
    if stopped.empty:
        return note("Every run finished (status done).")
    frame = pd.DataFrame(
        {
            "task": stopped.task,
            "model": stopped.model,
            "seed": stopped.seed,
            "status": stopped.status,
            "error": stopped.error.fillna(""),
            "run_id": stopped.run_id,
        }
    )
    return table(frame)


def page(title: str, sections: list[tuple[str, str, str]], subtitle: str = "") -> str:
    """The document: a title, a table of contents and the sections (anchor, heading, body HTML)."""
    nav = "".join(f'<a href="#{esc(anchor)}">{esc(heading)}</a>' for anchor, heading, _ in sections)
    body = "".join(
        f'<section id="{esc(anchor)}"><h2>{esc(heading)}</h2>{content}</section>'
        for anchor, heading, content in sections
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1>{note(subtitle) if subtitle else ''}<nav>{nav}</nav>"
        f"{body}</body></html>\n"
    )
