"""Source ingestion at corpus scale: readers of corpus shards, CodeMix and PyEdu-R
selection, exact and near-duplicate detection, decontamination.

Every function here is pure over one unit of work (a shard of files, a shard's
signatures, one file's text) plus a frozen config, so the Prefect tasks in
``tasks/ingest_shards.py`` stay a few lines and the benchmark can call the same
functions directly.
"""
