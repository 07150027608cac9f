"""The pickle virtual machine for torch checkpoints: only torch.save's opcodes, only allow-listed globals."""

from .opcodes import Op, opcode_name
from .torch_globals import SUPPORTED_DTYPES, TORCH_GLOBALS, AllowedCallable, StorageType, TensorRecord
from .unpickler import Unpickler, unpickle

__all__ = [
    "AllowedCallable",
    "Op",
    "SUPPORTED_DTYPES",
    "StorageType",
    "TORCH_GLOBALS",
    "TensorRecord",
    "Unpickler",
    "opcode_name",
    "unpickle",
]
