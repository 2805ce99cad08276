"""Atomic writers: files get the permissions the umask gives a normal file, and nothing half-written."""

import os
import stat

import pandas as pd
import pytest

from sgd_privacy.io import atomic_path, write_json, write_table


@pytest.fixture
def umask():
    """Set a umask for the test and restore the previous one afterwards."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600), (0o027, 0o640)])
def test_written_files_get_the_umask_permissions(tmp_path, umask, mask, mode):
    umask(mask)
    write_table(pd.DataFrame({"a": [1, 2]}), tmp_path / "t.parquet")
    write_json({"a": 1}, tmp_path / "sub" / "x.json")
    with atomic_path(tmp_path / "raw.bin") as tmp:
        tmp.write_bytes(b"1")
    plain = tmp_path / "plain"
    plain.write_text("reference: a file created the ordinary way")
    assert stat.S_IMODE(plain.stat().st_mode) == mode
    for name in ("t.parquet", "sub/x.json", "raw.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert os.umask(mask) == mask  # the umask itself is left as it was


def test_failed_block_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.parquet") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
