"""Metrics, baselines and reports that say how well retrieval works."""
