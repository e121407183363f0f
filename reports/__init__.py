"""Figures, tables and the HTML page, generated from the results store alone.

Entry point: `reports.build.build_report(store_path, profile=None, out_dir=None) -> Path` (the
index.html written), or `python -m reports.build --store results/results.sqlite --profile quick`.
Modules: build (orchestration), data (the store's frames of a profile, ReportError), sections (the
page's sections), learning (learning curves), paper_marks (the paper's values on them),
generalization (generalization curves), figures (what the curve figures share), memory (trace
pictures), speed (benchmark table and scaling plots), tables (statistics and the two tables),
table_files (their CSV/Markdown/LaTeX files), html (the page), style (the one look and model
colours), reference (the paper's values in paper_reference.yaml), claims (the paper's claims of
claims.yaml and their verdicts), claims_file (claims.yaml read and checked), claim_measures (what a
claim measures), verdicts (the committed claims table and its check), survival (Kaplan-Meier and
log-rank), convergence (their tables and figures), joint_points (the joint generalization points),
curriculum (curriculum marks).
Nothing here imports the project except results.store and results.schema (and
benchmarks.harness.cli's Parser, for the one-line usage errors every command line gives).
"""
