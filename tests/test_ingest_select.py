"""Ingestion's pure parts: readers, CodeMix and PyEdu-R selection, dedup and
decontamination, called directly on data the tests write."""

from __future__ import annotations

import json
import os

import pytest

from codeio.sources import fingerprint_sources, parse_source_specs, read_sources


# -- dir: sources and links (issue 13, item 6) -------------------------------------------------
def test_dir_source_does_not_follow_links_out_of_the_folder(tmp_path):
    root, outside = tmp_path / "src", tmp_path / "private"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    secret = outside / "secret.py"
    secret.write_text("API_KEY = 'do-not-read-me'\n")
    (root / "a.py").write_text("def a():\n    return 1\n")
    (root / "inside.py").symlink_to(root / "a.py")  # a link that stays in the folder is fine
    (root / "sub" / "leak.py").symlink_to(secret)
    (root / "sub" / "dangling.py").symlink_to(tmp_path / "nowhere.py")
    specs = parse_source_specs([f"dir:{root}"])
    outcomes = list(read_sources(specs))
    contents = [o.record["content"] for o in outcomes if o.record]
    assert all("do-not-read-me" not in text for text in contents)
    reasons = {o.rejected["record_id"].rsplit("/", 1)[-1]: o.rejected["reason"] for o in outcomes if o.rejected}
    assert reasons == {"leak.py": "link_outside_source", "dangling.py": "link_outside_source"}
    assert len(contents) == 2  # a.py and inside.py
    detail = next(o.rejected["detail"] for o in outcomes if o.rejected and o.rejected["record_id"].endswith("leak.py"))
    assert "outside" in detail
    # the dataset key never depends on (or reads) what the link points at
    before = fingerprint_sources(specs)
    secret.write_text("API_KEY = 'changed'\n")
    assert fingerprint_sources(specs) == before
    os.chmod(secret, 0)
    assert len(list(read_sources(specs))) == 4
