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


def test_written_files_get_the_usual_mode_or_keep_the_existing_one(tmp_path):
    import os
    import stat
    old = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "bundle.zip", b"data")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's private 0600
        path.chmod(0o600)  # the user made it private: writing it again keeps that
        assert stat.S_IMODE(write_atomic(path, b"again").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_stale_temporary_files_of_a_killed_write_are_removed(tmp_path):
    import os
    import time
    stale, live = tmp_path / ".out.zip.abc.tmp", tmp_path / ".out.zip.def.tmp"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    write_atomic(tmp_path / "out.zip", b"whole")
    assert not stale.exists() and live.exists()
    assert (tmp_path / "out.zip").read_bytes() == b"whole"
