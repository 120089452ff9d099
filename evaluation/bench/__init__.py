"""Benchmarks: the API under load, the index build, training, scale and a peer engine."""
