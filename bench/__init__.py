"""Benchmarks and production checks against live servers.

The API under load, the jobs, scale, a peer engine, schema fuzzing, load with writes, faults and floods.
"""
