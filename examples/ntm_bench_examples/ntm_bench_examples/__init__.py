"""Example ntm-bench plugins: `gru` (models) and `reverse_copy` (tasks), registered by entry points."""
