"""Benchmark support: synthetic inputs, baselines and metrics."""
