"""Reproducible measurements that chose the project's defaults (run each as ``python -m``)."""
