"""The training harness: profiles and their checks, the plan of (model, task, seed) runs, the one
training loop and its cadence, evaluation, executors (local and Ray), the store's writers,
publishing, kept weights, the learning-rate sweep and the command-line plumbing every tool
shares. run_suite.py drives it; the speed suite (benchmarks/speed_suite/) builds on it."""
