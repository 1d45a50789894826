import pytest

from explorer.store.atomic import atomic_file, check_writable, write_atomic
from explorer.errors import ExplorerError


def test_write_atomic_creates_folder_and_leaves_no_temp_file(tmp_path):
    out = write_atomic(tmp_path / "sub" / "r.json", "{}")
    assert out.read_text(encoding="utf-8") == "{}"
    write_atomic(out, b"\x00\x01")
    assert out.read_bytes() == b"\x00\x01"
    assert [p.name for p in out.parent.iterdir()] == ["r.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    out = write_atomic(tmp_path / "r.txt", "old")
    with pytest.raises(RuntimeError), atomic_file(out) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert out.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.txt"]


def test_unwritable_paths_raise_explorer_error(tmp_path):
    with pytest.raises(ExplorerError, match="is a folder"):
        check_writable(tmp_path)
    blocker = write_atomic(tmp_path / "file", "x")
    with pytest.raises(ExplorerError, match="not a writable folder"):
        write_atomic(blocker / "r.json", "{}")
