"""The speed suite, one instrument (`run_suite.py bench`; pytest-benchmark in tests/test_speed.py):
throughput and peak memory of each model's training step against a reference LSTM, a model
against its code at a git revision, and what a profile's runs cost, every mode timing its
contenders in turns (timing.time_rounds). Apart from the training harness: it builds its own
steps and batches and writes only the store's speed table. bench.py makes the table (each
configuration in turns with the reference), configs.py defines its profiles, checks.py refuses bad
flags before measuring, timing.py times, peak_memory.py measures peak memory, output.py makes,
prints and writes rows, interleaved.py times every model of a batch size in turns, versus.py the
models now against their code at a git revision (`bench --versus`), and cost.py what one run of
each (model, task) of a profile costs (`bench --cost`)."""
