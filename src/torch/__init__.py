"""Reading torch.save checkpoints without PyTorch: the zip archive, storages, tensors over mmap."""

from .checkpoint import StorageRef, find_consolidated_checkpoint, load_torch_checkpoint
from .zipfile import METHOD_STORED, ZipArchive, ZipEntry

__all__ = [
    "METHOD_STORED",
    "StorageRef",
    "ZipArchive",
    "ZipEntry",
    "find_consolidated_checkpoint",
    "load_torch_checkpoint",
]
