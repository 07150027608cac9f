"""CRC-32 checks and what a path is (issue 13, item 14, library side).

The zip directory holds each entry's CRC-32. Loading checks data.pkl and every entry under 1 MiB
(it reads nothing else, so the big matrices stay unread until Forward); `verify_checkpoint` checks
every entry. Python's zipfile (the reference) agrees about which file is corrupt.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from llamanuts.common.errors import ModelFileError
from llamanuts.common.mmapfile import MmapFile
from llamanuts.torch import SMALL_ENTRY_BYTES, load_torch_checkpoint, verify_checkpoint
from llamanuts.torch.zipfile import ZipArchive
from tools import forge


def _flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _entry_offset(path, name: str) -> int:
    with MmapFile(path) as file:
        entry = ZipArchive(file).entries[name]
        return entry.data_offset


def _copy(fixtures, tmp_path, name="tiny_checkpoint.pth"):
    path = tmp_path / name
    path.write_bytes((fixtures / name).read_bytes())
    return path


def _reference_says_corrupt(path) -> str | None:
    with zipfile.ZipFile(path) as archive:
        return archive.testzip()


def test_flipped_byte_in_a_tensor_name_of_data_pkl_is_refused(fixtures, tmp_path):
    path = _copy(fixtures, tmp_path)
    pickle_start = _entry_offset(path, "tiny_checkpoint/data.pkl")
    data = path.read_bytes()
    name_at = data.index(b"f32.matrix", pickle_start)
    _flip(path, name_at)  # 'f32.matrix' -> 'g32.matrix': before the CRC check it loaded, renamed
    assert _reference_says_corrupt(path) == "tiny_checkpoint/data.pkl"
    with pytest.raises(ModelFileError, match=r"zip entry 'tiny_checkpoint/data.pkl' is corrupt: .* CRC-32"):
        load_torch_checkpoint(path)


def test_flipped_byte_in_a_small_storage_is_refused_at_load(fixtures, tmp_path):
    path = _copy(fixtures, tmp_path)
    _flip(path, _entry_offset(path, "tiny_checkpoint/data/0") + 3)  # before: loaded, one value wrong
    assert _reference_says_corrupt(path) == "tiny_checkpoint/data/0"
    with pytest.raises(ModelFileError, match=r"'tiny_checkpoint/data/0' is corrupt"):
        load_torch_checkpoint(path)


@pytest.fixture
def large_checkpoint(tmp_path):
    """A checkpoint with one storage larger than SMALL_ENTRY_BYTES (not read at load)."""
    count = SMALL_ENTRY_BYTES // 4 + 1024
    tensor = forge.rebuild_tensor(forge.float_storage_pid(forge.text("0"), count), 0, (count,), (1,))
    storage = np.arange(count, dtype=np.float32).tobytes()
    return forge.write_checkpoint(tmp_path / "large.pth", forge.state_dict([("w", tensor)]), {"0": storage})


def test_corrupt_large_entry_loads_but_verify_finds_it(large_checkpoint):
    path = large_checkpoint
    assert verify_checkpoint(path).entries == 4
    _flip(path, _entry_offset(path, "archive/data/0") + 100_000)
    assert _reference_says_corrupt(path) == "archive/data/0"
    assert load_torch_checkpoint(path)["w"].shape[0] > SMALL_ENTRY_BYTES // 4  # not read at load
    with pytest.raises(ModelFileError, match=r"zip entry 'archive/data/0' is corrupt"):
        verify_checkpoint(path)


def test_verify_reports_progress_up_to_the_total(large_checkpoint):
    seen: list[tuple[int, int]] = []
    result = verify_checkpoint(large_checkpoint, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (result.bytes, result.bytes)
    assert result.compressed == ()


def test_verify_accepts_the_good_fixtures(fixtures):
    for name in ("tiny_checkpoint.pth", "tiny_checkpoint_proto4.pth", "tiny_meta"):
        assert verify_checkpoint(fixtures / name).entries > 0


def test_real_model_state_dict_loads(tmp_path):
    # model.state_dict() pickles an OrderedDict with a `_metadata` attribute (a BUILD); before, the
    # loader took it for a tensor name and refused the file as a nested dict.
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    torch.save(model.state_dict(), tmp_path / "sd.pth")
    tensors = load_torch_checkpoint(tmp_path / "sd.pth")
    assert list(tensors) == ["0.weight", "0.bias"]
    np.testing.assert_array_equal(tensors["0.weight"].numpy(), model[0].weight.detach().numpy())


# ---- what a path is ---------------------------------------------------------------------------------
def test_dangling_symlink_is_named_as_such(tmp_path):
    link = tmp_path / "model.pth"
    link.symlink_to(tmp_path / "gone.pth")
    with pytest.raises(ModelFileError, match=r"file is a dangling symbolic link \(to '.*gone.pth', which does not exist\)"):
        load_torch_checkpoint(link)


def test_fifo_is_named_and_not_opened_for_reading(tmp_path):
    fifo = tmp_path / "model.pth"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    with pytest.raises(ModelFileError, match=r"file is a named pipe \(FIFO\), not a regular file"):
        MmapFile(fifo)


def test_character_device_is_named():
    with pytest.raises(ModelFileError, match="/dev/zero: file is a character device, not a regular file"):
        MmapFile("/dev/zero")


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(ModelFileError, match="file not found"):
        MmapFile(tmp_path / "nope.pth")
