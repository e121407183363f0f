"""The speed suite (`run_suite.py bench`; pytest-benchmark in tests/test_speed.py): throughput
and peak memory of each model's training step against a reference LSTM timed in the same
process. Apart from the training harness: it builds its own steps and batches and writes only the
store's speed table. bench.py runs the configurations, configs.py defines them, checks.py
refuses bad flags before measuring, timing.py builds and times one step, peak_memory.py measures
peak memory, output.py makes, prints and writes rows, interleaved.py times contenders in
alternating rounds, versus.py times the models now against their code at a git revision, and
cost.py what one run of each (model, task) of a profile costs; those three time in turns, with
timing.time_rounds."""
