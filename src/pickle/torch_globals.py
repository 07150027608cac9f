"""The allow-list: the only globals a pickle may name, each mapped to OUR OWN callable or marker.

Python's pickle resolves `GLOBAL torch._utils _rebuild_tensor_v2` by importing `torch._utils` and
calling whatever it finds, which is how a malicious `.pth` runs `os.system`. Here a global is a key
into the fixed table `TORCH_GLOBALS`; nothing named by the file is ever imported or called. A name
outside the table stops the load with UnsafeModelError.

What the entries produce is plain data: a `TensorRecord` describes a tensor (storage, offset,
shape, strides) and `src/torch/checkpoint.py` validates it and maps it over the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from ..common.saferepr import short_repr
from .limits import DEFAULT_LIMITS, INT64_MAX


class PickleValueError(ValueError):
    """An allow-listed function got arguments of the wrong shape; the VM adds the file and position."""


@dataclass(frozen=True)
class StorageType:
    """A marker for `torch.<X>Storage`: which element type a storage holds.

    Storage types we cannot compute with are still known by name, so a float64 checkpoint fails with
    "dtype float64 is not supported" rather than with "unknown global".
    """

    qualname: str  # "torch.BFloat16Storage"
    dtype: str  # torch's dtype name: "bfloat16"
    itemsize: int
    supported: bool
    bounded_repr: ClassVar[bool] = True  # short_repr may quote it: its repr is its qualname

    def __repr__(self) -> str:
        return self.qualname


@dataclass
class TensorRecord:
    """What `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` describes."""

    storage: Any  # whatever the persistent-id resolver returned for this storage
    storage_offset: int  # in elements
    size: tuple[int, ...]
    stride: tuple[int, ...]  # in elements
    requires_grad: bool


@dataclass(frozen=True)
class AllowedCallable:
    """A global that REDUCE may call: our own function, under the name torch writes."""

    qualname: str
    function: Callable[..., Any]
    bounded_repr: ClassVar[bool] = True

    def __repr__(self) -> str:
        return self.qualname


def _is_int64(value: Any) -> bool:
    return type(value) is int and -INT64_MAX - 1 <= value <= INT64_MAX


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple):
        raise PickleValueError(f"{what} must be a tuple of ints, got {short_repr(value)}")
    if len(value) > DEFAULT_LIMITS.max_tensor_dims:
        raise PickleValueError(
            f"{what} has {len(value)} dimensions, more than the {DEFAULT_LIMITS.max_tensor_dims} a tensor may have"
        )
    # int64, as torch stores them: larger numbers describe no tensor, and their products would
    # reach sizes Python refuses to print.
    if not all(_is_int64(v) for v in value):
        raise PickleValueError(f"{what} must be a tuple of 64-bit ints, got {short_repr(value)}")
    return value


def rebuild_tensor_v2(*args: Any) -> TensorRecord:
    """(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])."""
    if len(args) not in (6, 7):
        raise PickleValueError(f"expected 6 or 7 arguments, got {len(args)}")
    storage, offset, size, stride, requires_grad = args[:5]
    if not _is_int64(offset):
        raise PickleValueError(f"storage_offset must be a 64-bit int, got {short_repr(offset)}")
    size = _int_tuple(size, "size")
    stride = _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise PickleValueError(f"size {size} and stride {stride} have different lengths")
    if not isinstance(requires_grad, bool):
        raise PickleValueError(f"requires_grad must be a bool, got {short_repr(requires_grad)}")
    # backward_hooks (args[5]) is an empty OrderedDict in every saved state dict; hooks are code, and
    # they are never saved by torch anyway, so it is ignored. Same for the optional metadata.
    return TensorRecord(storage, offset, size, stride, requires_grad)


def rebuild_parameter(data: Any, requires_grad: Any, _backward_hooks: Any) -> TensorRecord:
    """nn.Parameter around a tensor: for inference the tensor itself is all we keep."""
    if not isinstance(data, TensorRecord):
        raise PickleValueError(f"a Parameter must wrap a tensor, got {type(data).__name__}")
    return data


def ordered_dict(*args: Any) -> dict[Any, Any]:
    """`collections.OrderedDict()`: a plain dict keeps insertion order, which is all we need."""
    if args:
        raise PickleValueError("OrderedDict is only rebuilt empty (items follow with SETITEMS)")
    return {}


def _storage(name: str, dtype: str, itemsize: int, supported: bool) -> tuple[tuple[str, str], StorageType]:
    return ("torch", name), StorageType(f"torch.{name}", dtype, itemsize, supported)


SUPPORTED_DTYPES = ("bfloat16", "float16", "float32")

TORCH_GLOBALS: dict[tuple[str, str], object] = {
    ("torch._utils", "_rebuild_tensor_v2"): AllowedCallable("torch._utils._rebuild_tensor_v2", rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): AllowedCallable("torch._utils._rebuild_parameter", rebuild_parameter),
    ("collections", "OrderedDict"): AllowedCallable("collections.OrderedDict", ordered_dict),
    # torch.serialization._get_layout / torch.strided are not listed: torch 2.x does not emit them for
    # dense tensors (checked by disassembling real files), and sparse tensors are not supported.
    **dict(
        [
            _storage("BFloat16Storage", "bfloat16", 2, True),
            _storage("HalfStorage", "float16", 2, True),
            _storage("FloatStorage", "float32", 4, True),
            _storage("DoubleStorage", "float64", 8, False),
            _storage("LongStorage", "int64", 8, False),
            _storage("IntStorage", "int32", 4, False),
            _storage("ShortStorage", "int16", 2, False),
            _storage("CharStorage", "int8", 1, False),
            _storage("ByteStorage", "uint8", 1, False),
            _storage("BoolStorage", "bool", 1, False),
            _storage("ComplexFloatStorage", "complex64", 8, False),
            _storage("ComplexDoubleStorage", "complex128", 16, False),
        ]
    ),
}


__all__ = [
    "AllowedCallable",
    "PickleValueError",
    "SUPPORTED_DTYPES",
    "StorageType",
    "TORCH_GLOBALS",
    "TensorRecord",
    "ordered_dict",
    "rebuild_parameter",
    "rebuild_tensor_v2",
]
