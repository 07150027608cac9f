"""Write the tiny Hugging Face model directories and transformers' own outputs for them.

One command, from the repository root (deterministic: fixed seeds, one thread)::

    python -m tools.make_hf_fixture

What it writes, under ``tests/fixtures/hf/``:

* ``<name>/``: a directory exactly as ``LlamaForCausalLM.save_pretrained`` writes it
  (``config.json``, ``generation_config.json``, ``model.safetensors``) plus a tokenizer made with
  the ``tokenizers`` package (``tokenizer.json``, ``tokenizer_config.json``, and for one model
  ``chat_template.jinja``), so every file the engine reads is there:

  - ``tiny-llama2-hf``: Llama 2 style. Untied lm_head, bf16 weights, GQA (4 heads, 2 kv heads,
    head_dim 8 = hidden/heads), rope_theta 10000, a SentencePiece-style BPE tokenizer with byte
    fallback (converted from tests/fixtures/models/tiny-gqa/tokenizer.model, checked to encode as
    sentencepiece does), the Llama 2 chat template inside tokenizer_config.json.
  - ``tiny-llama32-hf``: Llama 3.2 style. Tied embeddings (no lm_head.weight), float32 weights,
    GQA (4 heads, 1 kv head) with an explicit head_dim 16 (not hidden/heads = 8), rope_theta 500000
    with "llama3" rope scaling, a byte-level BPE tokenizer trained here, a ChatML template in
    chat_template.jinja, two eos ids in generation_config.json.

* ``reference/<name>.npz``: what transformers computes on that directory, loaded back with
  ``from_pretrained(dtype=float32)``: ``ids`` (a chat prompt tokenized by transformers' own
  tokenizer with the chat template), ``logits`` [len(ids), vocab] float32 from the model's forward
  pass, ``greedy`` (40 ids from ``generate(do_sample=False)`` after ``ids``, with end-of-sequence
  stopping switched off so the length is fixed) and ``greedy_margins`` (top-1 minus top-2 logit at
  each greedy step).

The weights are random normals (numpy, seeded), large enough that the logits spread over a few
units. Seeds are tried in order until every greedy step wins by at least MIN_MARGIN, so that a
correct engine cannot flip a near-tie through rounding (as tools/make_fixtures.py does).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "hf"
SP_MODEL = REPO / "tests" / "fixtures" / "models" / "tiny-gqa" / "tokenizer.model"
VOCAB = 320
GREEDY = 40
MIN_MARGIN = 0.05
SEED_STRIDE = 1000
MAX_SEED_TRIES = 100
PROMPT = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "The cat finds 42 apples!"}]

STD = {"embed": 0.1, "qk": 0.25, "vo": 0.1, "ffn": 0.1, "lm_head": 0.3, "norm_noise": 0.1}

LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system_message = '<<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' %}"
    "{% set messages = messages[1:] %}"
    "{% else %}{% set system_message = '' %}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + (system_message if loop.first else '') + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'] + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class HFSpec:
    name: str
    config: dict  # LlamaConfig arguments
    dtype: torch.dtype  # how the weights are stored
    tokenizer: str  # "sentencepiece-bpe" | "byte-level-bpe"
    seed: int


SPECS = (
    HFSpec(
        "tiny-llama2-hf",
        dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=128,
             tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=None),
        torch.bfloat16, "sentencepiece-bpe", seed=4321,
    ),
    HFSpec(
        "tiny-llama32-hf",
        dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
             num_key_value_heads=1, head_dim=16, rms_norm_eps=1e-5, rope_theta=500000.0,
             rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 16},
             max_position_embeddings=128, tie_word_embeddings=True, bos_token_id=0, eos_token_id=[2, 0],
             pad_token_id=2),
        torch.float32, "byte-level-bpe", seed=8765,
    ),
)


# ----------------------------------------------------------------------------- tokenizers


def training_lines() -> list[str]:
    from tools.make_fixtures import training_text

    return training_text().splitlines()


def sentencepiece_bpe_tokenizer():  # type: ignore[no-untyped-def]
    """The tiny SentencePiece BPE model (byte fallback) as a `tokenizers` BPE, the way Hugging Face
    converts Llama 2's tokenizer.model: the same pieces and ids, merges ranked by the merged piece's
    score, `▁` for spaces, unknown characters as <0xXX> byte pieces."""
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    sp = spm.SentencePieceProcessor(model_file=str(SP_MODEL))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    # A merge (a, b) exists for every piece that splits into two pieces of the vocabulary; the
    # piece's own rank (its score, which sentencepiece uses to pick the next merge) orders them.
    merges = []
    for piece, piece_id in vocab.items():
        if sp.is_control(piece_id) or sp.is_unknown(piece_id) or sp.is_byte(piece_id):
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                merges.append((sp.get_score(piece_id), vocab[left], vocab[right], (left, right)))
    merges.sort(key=lambda m: (-m[0], m[1], m[2]))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[m[3] for m in merges], unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    # The conversion must encode exactly as sentencepiece does.
    for line in training_lines()[:200] + ["Ünïcödé ☃ and 12345 spaces  here", "x"]:
        ours = tok.encode(line, add_special_tokens=False).ids
        theirs = sp.encode(line)
        if ours != theirs:
            raise SystemExit(f"tokenizer conversion differs from sentencepiece on {line!r}: {ours} vs {theirs}")
    return tok


def byte_level_bpe_tokenizer():  # type: ignore[no-untyped-def]
    """A GPT-2 / Llama 3 / SmolLM2-style byte-level BPE trained on the fixture text: 256 byte
    symbols, merges up to VOCAB, three special tokens first (SmolLM2's ids 0, 1, 2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_lines(), trainer=trainer)
    if tok.get_vocab_size() != VOCAB:
        raise SystemExit(f"byte-level BPE has {tok.get_vocab_size()} tokens, expected {VOCAB}")
    return tok


def write_tokenizer(spec: HFSpec, directory: Path) -> None:
    if spec.tokenizer == "sentencepiece-bpe":
        sentencepiece_bpe_tokenizer().save(str(directory / "tokenizer.json"))
        config = {
            "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
            "unk_token": "<unk>", "pad_token": None, "clean_up_tokenization_spaces": False,
            "model_max_length": spec.config["max_position_embeddings"], "tokenizer_class": "LlamaTokenizer",
            "chat_template": LLAMA2_CHAT_TEMPLATE,
        }
    else:
        byte_level_bpe_tokenizer().save(str(directory / "tokenizer.json"))
        config = {
            "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>",
            "pad_token": "<|im_end|>", "clean_up_tokenization_spaces": False,
            "model_max_length": spec.config["max_position_embeddings"], "tokenizer_class": "GPT2Tokenizer",
        }
        (directory / "chat_template.jinja").write_text(CHATML_TEMPLATE, encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- weights


def random_state_dict(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Every parameter redrawn from numpy in the state dict's order (tied lm_head: not drawn)."""
    rng = np.random.default_rng(seed)
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        shape = tuple(tensor.shape)
        if name.endswith("norm.weight"):
            values = 1.0 + rng.normal(0.0, STD["norm_noise"], size=shape)
        elif name == "model.embed_tokens.weight":
            values = rng.normal(0.0, STD["embed"], size=shape)
        elif name == "lm_head.weight":
            if model.config.tie_word_embeddings:
                continue
            values = rng.normal(0.0, STD["lm_head"], size=shape)
        elif name.endswith(("q_proj.weight", "k_proj.weight")):
            values = rng.normal(0.0, STD["qk"], size=shape)
        elif name.endswith(("v_proj.weight", "o_proj.weight")):
            values = rng.normal(0.0, STD["vo"], size=shape)
        else:
            values = rng.normal(0.0, STD["ffn"], size=shape)
        out[name] = torch.from_numpy(values.astype(np.float32))
    return out


def write_model(spec: HFSpec, directory: Path, seed: int) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**spec.config)
    model = LlamaForCausalLM(config)
    model.load_state_dict(random_state_dict(model, seed), strict=False)
    model.tie_weights()
    model.to(spec.dtype).save_pretrained(directory)


# ----------------------------------------------------------------------------- reference


@torch.inference_mode()
def reference_outputs(directory: Path) -> dict[str, np.ndarray]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True, return_dict=False)
    ids = [int(i) for i in (ids["input_ids"] if isinstance(ids, dict) else ids)]
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model.eval()
    logits = model(torch.tensor([ids])).logits[0].float().numpy()
    model.generation_config.eos_token_id = None  # a fixed length: random models have no meaningful end
    generated = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=GREEDY, pad_token_id=0)
    greedy = [int(t) for t in generated[0, len(ids):]]
    full = model(torch.tensor([ids + greedy])).logits[0].float().numpy()
    steps = full[len(ids) - 1 : len(ids) - 1 + len(greedy)]
    top2 = np.sort(steps, axis=-1)[:, -2:]
    margins = top2[:, 1] - top2[:, 0]
    if [int(t) for t in steps.argmax(-1)] != greedy:
        raise SystemExit(f"{directory}: generate() disagrees with the forward pass's argmax")
    return {
        "ids": np.asarray(ids, dtype=np.int64),
        "logits": logits.astype(np.float32),
        "greedy": np.asarray(greedy, dtype=np.int64),
        "greedy_margins": margins.astype(np.float32),
    }


def make(spec: HFSpec, out: Path) -> tuple[int, dict[str, np.ndarray]]:
    directory = out / spec.name
    for attempt in range(MAX_SEED_TRIES):
        seed = spec.seed + attempt * SEED_STRIDE
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        write_model(spec, directory, seed)
        write_tokenizer(spec, directory)
        reference = reference_outputs(directory)
        if len(reference["greedy"]) == GREEDY and float(reference["greedy_margins"].min()) >= MIN_MARGIN:
            return seed, reference
    raise SystemExit(f"{spec.name}: no decisive seed in {MAX_SEED_TRIES} tries")


README = """# Hugging Face fixtures

Generated by `python -m tools.make_hf_fixture` (from the repository root) with torch {torch}, transformers
{transformers}, tokenizers {tokenizers}, numpy {numpy}, `torch.set_num_threads(1)`. Do not edit by hand:
change the script and rerun it.

Each `<name>/` directory is what `LlamaForCausalLM.save_pretrained` writes (config.json,
generation_config.json, model.safetensors) plus a tokenizer built with the `tokenizers` package
(tokenizer.json, tokenizer_config.json, chat_template.jinja for one). The weights are random normals
(numpy, seeded; std 0.1 embedding, 0.25 q/k, 0.1 v/o, 0.1 FFN, 0.3 lm_head, norms 1 + N(0, 0.1)).

`reference/<name>.npz` holds transformers' own outputs for that directory, loaded back in float32:
`ids` (the chat prompt {prompt!r} tokenized by transformers with the model's chat template), `logits`
(the forward pass over `ids`), `greedy` ({greedy} ids from `generate(do_sample=False)`, end-of-sequence
stopping off) and `greedy_margins` (top-1 minus top-2 logit at each greedy step; seeds are tried until
every margin is at least {margin}).

| model | layers | hidden | heads / kv | head_dim | FFN | tied | stored | rope | tokenizer | seed | files |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.make_hf_fixture", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    flags = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    import tokenizers
    import transformers

    rows = []
    for spec in SPECS:
        seed, reference = make(spec, flags.out)
        (flags.out / "reference").mkdir(parents=True, exist_ok=True)
        np.savez_compressed(flags.out / "reference" / f"{spec.name}.npz", **reference)
        c = spec.config
        size = sum(p.stat().st_size for p in (flags.out / spec.name).iterdir())
        rope = f"theta {c['rope_theta']:g}" + (", llama3 scaling" if c.get("rope_scaling") else "")
        rows.append(
            f"| {spec.name} | {c['num_hidden_layers']} | {c['hidden_size']} | {c['num_attention_heads']} / "
            f"{c['num_key_value_heads']} | {c.get('head_dim', c['hidden_size'] // c['num_attention_heads'])} | "
            f"{c['intermediate_size']} | {c['tie_word_embeddings']} | {str(spec.dtype).replace('torch.', '')} | {rope} | "
            f"{spec.tokenizer} | {seed} | {size:,} bytes |"
        )
        print(f"{spec.name}: seed {seed}, min margin {reference['greedy_margins'].min():.3f}, {size:,} bytes")
    (flags.out / "README.md").write_text(
        README.format(
            torch=torch.__version__, transformers=transformers.__version__, tokenizers=tokenizers.__version__,
            numpy=np.__version__, prompt=PROMPT, greedy=GREEDY, margin=MIN_MARGIN, rows="\n".join(rows),
        ),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
