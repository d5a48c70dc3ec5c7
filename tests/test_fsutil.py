"""flowml.fsutil.replace_file: atomic replacement; a reader that has the old file open keeps it."""

from flowml.fsutil import replace_file


def test_replace_file_swaps_atomically_under_an_open_reader(tmp_path):
    dst, new = tmp_path / "still.png", tmp_path / ".still.png.partial"
    dst.write_bytes(b"old")
    new.write_bytes(b"new")
    with open(dst, "rb") as reader:  # POSIX: allowed; Windows: retried while held (bounded)
        replace_file(new, dst)
        assert reader.read() == b"old"
    assert dst.read_bytes() == b"new" and not new.exists()
