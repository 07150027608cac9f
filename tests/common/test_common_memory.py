"""address_space_cap: a temporary soft RLIMIT_AS, for work whose memory cannot be checked up front."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

import pytest

from llamanuts.common.memory import address_space_cap


def test_an_allocation_beyond_the_cap_fails_inside_and_succeeds_after() -> None:
    before = resource.getrlimit(resource.RLIMIT_AS)
    with address_space_cap(64 << 20):
        with pytest.raises(MemoryError):
            bytearray(256 << 20)
        assert len(bytearray(1 << 20)) == 1 << 20  # small ones still work
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert len(bytearray(256 << 20)) == 256 << 20


def test_the_limit_is_restored_when_the_work_raises() -> None:
    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(ValueError):
        with address_space_cap(64 << 20):
            raise ValueError("inside")
    assert resource.getrlimit(resource.RLIMIT_AS) == before


def test_a_tighter_limit_already_set_is_kept() -> None:
    # In a child: set RLIMIT_AS to what is in use plus 32 MiB, then ask for a cap of 1 GiB.
    code = textwrap.dedent(
        """
        import resource
        from llamanuts.common.memory import _address_space_in_use, address_space_cap
        limit = _address_space_in_use() + (32 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
        with address_space_cap(1 << 30):
            inside = resource.getrlimit(resource.RLIMIT_AS)[0]
        print(inside == limit, resource.getrlimit(resource.RLIMIT_AS)[0] == limit)
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-400:]
    assert run.stdout.split() == ["True", "True"]
