"""Measurement of the product: evaluation, metrics, benchmarks and experiments (depends on rag, never the reverse)."""
