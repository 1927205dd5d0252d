"""Persistence: the dataset store, caches and the lineage database."""
