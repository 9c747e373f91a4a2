"""Fixtures shared by the bench tests: the tiny two-modality dataset of ``test_bench_harness``."""

from test_bench_harness import tiny_dataset  # noqa: F401 - re-exported as a fixture for this folder
