"""Training, evaluation, execution and speed measurement of the suite's runs."""
