"""Benchmarks: scenarios, peers and results."""
