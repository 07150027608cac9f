"""The perplexity text is read only from a regular file of a sane size (issue 13, item 11).

Before, `llama_perplexity --text /dev/zero` read forever and a FIFO without a writer hung.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llamanuts.common.errors import LlamaError
from llamanuts.inference.perplexity import read_text


def test_a_regular_utf8_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_text("In the beginning ✝\n", encoding="utf-8")
    assert read_text(path) == "In the beginning ✝\n"


def test_dev_zero_is_refused_without_reading() -> None:
    with pytest.raises(LlamaError, match="/dev/zero: text file is a character device, not a regular file"):
        read_text("/dev/zero")


def test_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "text.txt"
    os.mkfifo(fifo)
    with pytest.raises(LlamaError, match=r"text file is a named pipe \(FIFO\)"):
        read_text(fifo)


def test_directory_and_dangling_link_are_named(tmp_path: Path) -> None:
    with pytest.raises(LlamaError, match="text file is a directory"):
        read_text(tmp_path)
    link = tmp_path / "gone.txt"
    link.symlink_to(tmp_path / "nothing.txt")
    with pytest.raises(LlamaError, match="text file is a dangling symbolic link"):
        read_text(link)


def test_a_file_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_bytes(b"x" * 101)
    with pytest.raises(LlamaError, match="text file is 101 bytes, more than the limit of 100 bytes"):
        read_text(path, max_bytes=100)


def test_invalid_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_bytes(b"abc\xff")
    with pytest.raises(LlamaError, match="text file is not valid UTF-8: byte 3 is 0xff"):
        read_text(path)
