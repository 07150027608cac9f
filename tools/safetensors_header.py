#!/usr/bin/env python3
"""Show a Hugging Face directory as our loader reads it: the safetensors header byte by byte, the
tensor table, config.json turned into ModelArgs, and how q_proj's rows pair the RoPE features.

    python -m tools.safetensors_header                              # the committed tiny fixture
    python -m tools.safetensors_header --model ~/.cache/llamanuts/smollm2-135m-instruct-hf --rows 6

The reader is src/safetensors/reader.py, the names src/safetensors/names.py, the hyperparameters
src/safetensors/config.py. Chapter 03a quotes this output and the docs check reruns it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "tests" / "fixtures" / "hf" / "tiny-llama2-hf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.safetensors_header", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT, help="a Hugging Face directory (default: tests/fixtures/hf/tiny-llama2-hf)")
    parser.add_argument("--rows", type=int, default=8, help="tensor entries to list (default 8)")
    args = parser.parse_args(argv)

    from llamanuts.model.rope import ROPE_HALVES  # noqa: F401 - the pairing this layout needs
    from llamanuts.safetensors.checkpoint import find_safetensors_files
    from llamanuts.safetensors.config import load_hf_config, model_args_from_hf_config
    from llamanuts.safetensors.names import meta_name
    from llamanuts.safetensors.reader import SafetensorsFile

    directory = args.model
    shown = directory.relative_to(REPO) if directory.resolve().is_relative_to(REPO) else directory
    single, shards = find_safetensors_files(directory)
    path = single or shards[0]
    st = SafetensorsFile(path)
    raw = path.read_bytes()[:8 + min(st.header_length, 160)]
    print(f"{shown}/{path.name}: {st.file.size:,} bytes")
    print(f"bytes 0-7   {raw[:8].hex(' ')}  = N = {st.header_length} (uint64, little-endian): the JSON header's length")
    print(f"bytes 8-    {raw[8:8 + 72].decode('utf-8', 'replace')!r} ...")
    print(f"data        from byte 8 + {st.header_length} = {st.data_start}; __metadata__ = {st.metadata}")
    print(f"tensors     {len(st.tensors)} (name, dtype, shape, data_offsets, Meta's name), in the order of their bytes:")
    for info in sorted(st.tensors.values(), key=lambda i: i.begin)[: args.rows]:
        print(f"  {info.name:<44} {info.dtype:<4} {str(list(info.shape)):<10} [{info.begin}, {info.end})  -> {meta_name(info.name)}")
    config = load_hf_config(directory / "config.json")
    model_args = model_args_from_hf_config(config, directory / "config.json")
    print(f"config.json -> ModelArgs(dim={model_args.dim}, n_layers={model_args.n_layers}, n_heads={model_args.n_heads}, "
          f"n_kv_heads={model_args.n_kv_heads}, head_dim={model_args.head_dim}, hidden_dim={model_args.hidden_dim}, "
          f"vocab_size={model_args.vocab_size}, rope_theta={model_args.rope_theta:g})")
    half = model_args.head_dim // 2
    pairs = ", ".join(f"({i}, {i + half})" for i in range(3))
    meta = ", ".join(f"({2 * i}, {2 * i + 1})" for i in range(3))
    print(f"RoPE pairs  of each head of q_proj/k_proj (rotate_half): {pairs}, ... ({half} pairs); Meta's wq/wk: {meta}, ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
