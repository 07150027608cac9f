"""MmapFile: read-only map, bounds-checked reads and views, clean close."""

from __future__ import annotations

import numpy as np
import pytest

from llamanuts.common.errors import ModelFileError
from llamanuts.common.mmapfile import MmapFile


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(np.arange(16, dtype=np.float32).tobytes())
    return path


def test_array_is_a_read_only_view(data_file):
    file = MmapFile(data_file)
    array = file.array(np.float32, 8, 4)
    np.testing.assert_array_equal(array, [2, 3, 4, 5])
    assert not array.flags.writeable
    with pytest.raises(ValueError):
        array[0] = 1.0


def test_read_copies_bytes(data_file):
    with MmapFile(data_file) as file:
        assert file.size == 64
        assert file.read(0, 4) == np.float32(0).tobytes()


def test_out_of_range_read_is_a_clear_error(data_file):
    with MmapFile(data_file) as file:
        with pytest.raises(ModelFileError, match=r"cannot read bytes \[60, 68\): the file has 64 bytes"):
            file.read(60, 8)


def test_out_of_range_array_is_a_clear_error(data_file):
    with MmapFile(data_file) as file:
        with pytest.raises(ModelFileError, match=r"range \[32, 96\) lies outside the file \(64 bytes\)"):
            file.array(np.float32, 32, 16)


def test_close_without_views_unmaps(data_file):
    file = MmapFile(data_file)
    file.close()
    assert file.closed


def test_close_with_live_views_keeps_them_valid(data_file):
    file = MmapFile(data_file)
    array = file.array(np.float32, 0, 16)
    file.close()  # must not raise BufferError, and must not pull the pages from under the view
    assert not file.closed
    assert array.sum() == sum(range(16))


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="file not found"):
        MmapFile(tmp_path / "nope.bin")


def test_directory(tmp_path):
    with pytest.raises(ModelFileError, match="is a directory"):
        MmapFile(tmp_path)
