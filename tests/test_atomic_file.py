import os

import pytest

from tfsr.atomic_file import atomic_output, check_output_path


def test_the_new_file_replaces_the_old_one_whole(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("old")
    with atomic_output(str(path)) as tmp:
        assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "w") as f:
            f.write("new")
        assert path.read_text() == "old"  # untouched until the block ends
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_output(str(path)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.json"]


def test_check_output_path(tmp_path):
    check_output_path(str(tmp_path / "new.npz"))  # a new file in an existing folder
    (tmp_path / "old.npz").write_text("x")
    check_output_path(str(tmp_path / "old.npz"))  # an existing file: replacing it is the caller's
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_output_path(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="output folder .*missing.* does not exist"):
        check_output_path(str(tmp_path / "missing" / "new.npz"))
