"""Hugging Face checkpoints: safetensors files (read by hand), shards, config.json, tensor names.

    SafetensorsFile / load_safetensors     one .safetensors file -> Tensors viewing the mapped bytes
    load_safetensors_checkpoint            model.safetensors, or shards through the index
    model_args_from_hf_config              config.json (LlamaForCausalLM) -> ModelArgs
    meta_state_dict                        Hugging Face's tensor names -> Meta's
    is_hf_directory / read_chat_template   what a model directory holds

src/model/loader.py: load_hf_model puts these together into a LoadedModel.
"""

from .checkpoint import INDEX_FILE, SINGLE_FILE, SafetensorsCheckpoint, load_safetensors_checkpoint
from .config import CONFIG_FILE, load_hf_config, model_args_from_hf_config, tie_word_embeddings
from .hfdirectory import hf_directory_files, is_hf_directory, read_chat_template
from .names import hf_name, meta_name, meta_state_dict
from .reader import SafetensorsFile, TensorInfo, load_safetensors

__all__ = [
    "CONFIG_FILE",
    "INDEX_FILE",
    "SINGLE_FILE",
    "SafetensorsCheckpoint",
    "SafetensorsFile",
    "TensorInfo",
    "hf_directory_files",
    "hf_name",
    "is_hf_directory",
    "load_hf_config",
    "load_safetensors",
    "load_safetensors_checkpoint",
    "meta_name",
    "meta_state_dict",
    "model_args_from_hf_config",
    "read_chat_template",
    "tie_word_embeddings",
]
