"""load_torch_checkpoint: torch's values, as views over the mapped file, with clear errors."""

from __future__ import annotations

import mmap
import shutil

import numpy as np
import pytest

from llamanuts.common.errors import ModelFileError
from llamanuts.common.mmapfile import MmapFile
from llamanuts.ml import DT_BF16, DT_F32
from llamanuts.torch import load_torch_checkpoint


def _mapping_of(array: np.ndarray) -> object:
    """Follow numpy's base chain to the object that owns the memory."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


@pytest.fixture
def values(fixtures):
    with np.load(fixtures / "tiny_checkpoint.npz") as npz:
        return {name: npz[name] for name in npz.files}


def test_names_in_file_order(fixtures):
    tensors = load_torch_checkpoint(fixtures / "tiny_checkpoint.pth")
    assert list(tensors) == ["bf16.matrix", "f16.vector", "f32.matrix", "bf16.rows_2_to_4", "f32.parameter", "f32.scalar"]


def test_dtypes_and_shapes(fixtures):
    tensors = load_torch_checkpoint(fixtures / "tiny_checkpoint.pth")
    assert (tensors["bf16.matrix"].dtype, tensors["bf16.matrix"].shape) == (DT_BF16, (4, 8))
    assert (tensors["f16.vector"].dtype, tensors["f16.vector"].shape) == (DT_F32, (6,))
    assert (tensors["f32.matrix"].dtype, tensors["f32.matrix"].shape) == (DT_F32, (3, 5))
    assert tensors["f32.scalar"].shape == ()
    assert tensors["bf16.matrix"].name == "bf16.matrix"


@pytest.mark.parametrize("file", ["tiny_checkpoint.pth", "tiny_checkpoint_proto4.pth"])
def test_values_equal_what_torch_wrote(fixtures, values, file):
    tensors = load_torch_checkpoint(fixtures / file)
    for name, tensor in tensors.items():
        if tensor.dtype is DT_BF16:
            np.testing.assert_array_equal(tensor.data, values[name + ".bits"])
        np.testing.assert_array_equal(tensor.numpy(), values[name])


def test_bf16_and_f32_are_zero_copy_views_of_the_mmap(fixtures):
    tensors = load_torch_checkpoint(fixtures / "tiny_checkpoint.pth")
    for name in ["bf16.matrix", "f32.matrix", "bf16.rows_2_to_4", "f32.parameter", "f32.scalar"]:
        data = tensors[name].data
        owner = _mapping_of(data)
        assert isinstance(owner, mmap.mmap), name
        assert np.shares_memory(data, np.frombuffer(owner, dtype=np.uint8)), name
        assert not data.flags.writeable and not data.flags.owndata


def test_all_views_share_one_map(fixtures):
    tensors = load_torch_checkpoint(fixtures / "tiny_checkpoint.pth")
    owners = {id(_mapping_of(t.data)) for n, t in tensors.items() if n != "f16.vector"}
    assert len(owners) == 1


def test_float16_is_the_one_copy(fixtures):
    tensor = load_torch_checkpoint(fixtures / "tiny_checkpoint.pth")["f16.vector"]
    assert tensor.data.dtype == np.float32 and tensor.data.flags.owndata


def test_view_offset_into_a_larger_storage(fixtures, values):
    tensor = load_torch_checkpoint(fixtures / "tiny_checkpoint.pth")["bf16.rows_2_to_4"]
    np.testing.assert_array_equal(tensor.data, values["bf16.rows_2_to_4.bits"])


def test_loading_reads_no_weight_bytes(fixtures, monkeypatch):
    # Every byte read through MmapFile.read (headers, pickle) is recorded: none may fall inside a storage.
    reads: list[tuple[int, int]] = []
    original = MmapFile.read

    def recording_read(self, offset, length):
        reads.append((offset, offset + length))
        return original(self, offset, length)

    monkeypatch.setattr(MmapFile, "read", recording_read)
    tensors = load_torch_checkpoint(fixtures / "tiny_checkpoint.pth")
    base = np.frombuffer(_mapping_of(tensors["bf16.matrix"].data), dtype=np.uint8)
    base_address = base.__array_interface__["data"][0]
    for name, tensor in tensors.items():
        if name == "f16.vector":
            continue
        start = tensor.data.__array_interface__["data"][0] - base_address
        end = start + tensor.data.nbytes
        assert all(r_end <= start or r_start >= end for r_start, r_end in reads), name


def test_progress_is_reported_per_tensor(fixtures):
    calls = []
    load_torch_checkpoint(fixtures / "tiny_checkpoint.pth", progress=lambda d, t, n: calls.append((d, t, n)))
    assert [c[0] for c in calls] == [1, 2, 3, 4, 5, 6]
    assert {c[1] for c in calls} == {6}
    assert calls[0][2] == "bf16.matrix"


def test_directory_with_consolidated_00(fixtures, tmp_path):
    shutil.copyfile(fixtures / "tiny_checkpoint.pth", tmp_path / "consolidated.00.pth")
    assert len(load_torch_checkpoint(tmp_path)) == 6


def test_multi_file_checkpoint_is_refused(fixtures, tmp_path):
    for shard in ("consolidated.00.pth", "consolidated.01.pth"):
        shutil.copyfile(fixtures / "tiny_checkpoint.pth", tmp_path / shard)
    with pytest.raises(ModelFileError, match=r"multi-file checkpoints .* are not supported yet.*13B"):
        load_torch_checkpoint(tmp_path)


def test_directory_without_checkpoint(tmp_path):
    with pytest.raises(ModelFileError, match="no consolidated.00.pth"):
        load_torch_checkpoint(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="file not found"):
        load_torch_checkpoint(tmp_path / "nope.pth")


def test_compressed_storage_is_refused(fixtures):
    with pytest.raises(ModelFileError, match=r"compressed.pth: zip entry 'compressed/data/0' is compressed"):
        load_torch_checkpoint(fixtures / "compressed.pth")


def test_truncated_file_is_refused(fixtures):
    with pytest.raises(ModelFileError, match="truncated"):
        load_torch_checkpoint(fixtures / "truncated.pth")


def test_tensor_larger_than_its_storage_is_refused(fixtures):
    with pytest.raises(ModelFileError, match=r"tensor 'w' of shape \[4 2\] needs elements \[0, 8\) of storage '0', which has only 6"):
        load_torch_checkpoint(fixtures / "short_storage.pth")


def test_storage_larger_than_its_entry_is_refused(fixtures):
    with pytest.raises(ModelFileError, match=r"holds 16 elements = 64 bytes, but its zip entry .* has only 32 bytes"):
        load_torch_checkpoint(fixtures / "short_entry.pth")


def test_non_contiguous_tensor_is_refused(fixtures):
    with pytest.raises(ModelFileError, match=r"tensor 'w' of shape \[4 3\] has strides \[1 4\], not C-contiguous"):
        load_torch_checkpoint(fixtures / "non_contiguous.pth")


def test_unsupported_dtype_is_refused(fixtures):
    with pytest.raises(ModelFileError, match=r"tensor 'w' has dtype float64 .*not supported"):
        load_torch_checkpoint(fixtures / "unsupported_dtype.pth")


def test_nested_dict_is_refused(fixtures):
    with pytest.raises(ModelFileError, match=r"'model' is a nested dict"):
        load_torch_checkpoint(fixtures / "nested.pth")


def test_zip_without_pickle_is_refused(tmp_path):
    import zipfile

    path = tmp_path / "other.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match=r"expected exactly one '<archive>/data.pkl' entry"):
        load_torch_checkpoint(path)


def test_skipped_names_are_not_mapped_or_checked(fixtures):
    # unsupported_dtype.pth's only tensor is float64: skipping it means no error and no tensor.
    assert load_torch_checkpoint(fixtures / "unsupported_dtype.pth", skip={"w"}) == {}
