"""Benchmark scripts for django-jobprogress (not tests; see bench/README.md)."""
