"""Example ntm-bench plugins: `example_gru` (models) and `example_reverse_copy` (tasks),
registered by entry points."""
