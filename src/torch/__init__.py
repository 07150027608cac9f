"""Reading torch.save checkpoints without PyTorch: the zip archive, storages, tensors over mmap."""

from .checkpoint import StorageRef, VerifyResult, find_consolidated_checkpoint, load_torch_checkpoint, verify_checkpoint
from .zipfile import METHOD_STORED, SMALL_ENTRY_BYTES, ZipArchive, ZipEntry

__all__ = [
    "METHOD_STORED",
    "SMALL_ENTRY_BYTES",
    "StorageRef",
    "VerifyResult",
    "ZipArchive",
    "ZipEntry",
    "find_consolidated_checkpoint",
    "load_torch_checkpoint",
    "verify_checkpoint",
]
