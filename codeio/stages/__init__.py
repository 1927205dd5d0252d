"""Pipeline stages: pure functions over one shard of records plus a frozen config.

Each stage module declares the schemas it reads (``READS``) and writes
(``WRITES``) and a ``VERSION`` that enters the dataset key, so changing a
stage's logic invalidates exactly its own outputs and what depends on them.
"""
