"""Limits: how much work and memory one pickle may cost, all in one place, each with its reason.

A pickle is a program, and a 400-byte program can ask for 2^60 steps (hash a tuple that holds the
same tuple twice at each of 60 levels) or make Python's C code recurse 150,000 frames deep and
crash. The VM checks every value it builds against these numbers *before* building it, so a hostile
file stops with a ModelFileError that names the limit, instead of hanging or crashing the process.

The numbers leave a wide margin over what torch.save writes for any real model: a state dict costs
about 24 VM objects, 8 memo entries and 100 pickle bytes per tensor and nests 5 levels deep
(measured on the fixtures and the default model), and Llama 3.1 405B has about 1,100 tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True)
class Limits:
    # data.pkl is read into memory whole; 64 MiB is over 600,000 tensors' worth of pickle.
    max_pickle_bytes: int = 64 << 20
    # Nesting of containers (tuple/list/dict and the tensor records built from them). A state dict
    # is 5 deep, a training checkpoint about 8; 64 stays far below the depth at which Python's own
    # repr / == / hash recurse out of the C stack.
    max_depth: int = 64
    # Values pushed on the stack (every opcode pushes at most one): about 170,000 tensors' worth
    # (a mixture-of-experts model holds tens of thousands), and at most a few hundred MB of VM memory.
    max_objects: int = 4_000_000
    # Memo entries (BINPUT / MEMOIZE): torch memoizes about 8 values per tensor.
    max_memo: int = 4_000_000
    # Items in one tuple, list or dict: a state dict holds one item per tensor.
    max_container_items: int = 1_000_000
    # One string (BINUNICODE): tensor names are under 200 bytes; 1 MiB leaves room for any metadata.
    max_string_bytes: int = 1 << 20
    # Dict keys are hashed only when they are small flat values: str, bool, None, or an int of
    # magnitude below this. Python's int hash is the value modulo 2^61 - 1, so large ints (and
    # tuples and floats built from them) can be chosen to collide and make each insertion scan all
    # earlier keys; small ints have distinct hashes. str hashes are randomised per process.
    max_key_int: int = 1 << 31
    # Dimensions of one tensor: numpy 1.x allows 32 (numpy 2.x 64); real weights have at most 4.
    max_tensor_dims: int = 32
    # Characters of an untrusted value quoted in an error message (see common/saferepr.py).
    max_repr_chars: int = 80


DEFAULT_LIMITS = Limits()

__all__ = ["DEFAULT_LIMITS", "INT64_MAX", "Limits"]
