"""Figures, tables and the HTML page, generated from the results store alone.

Entry point: `reports.build.build_report(store_path, profile=None, out_dir=None) -> Path` (the
index.html written), or `python -m reports.build --store results/results.sqlite --profile quick`.
Modules: build (orchestration, ReportError), figures (learning and generalization curves),
memory (trace pictures), speed (benchmark table and scaling plots), tables (statistics and
CSV/Markdown/LaTeX), html (the page), style (the one look and model colours), reference (the
paper's values in paper_reference.yaml). Nothing here imports the project except results.store.
"""
