"""Write tests/fixtures/tokenizer/corpus.jsonl: the texts the tokenizer fidelity tests encode.

    python -m tools.make_tokenizer_corpus

One JSON string per line (so a case can hold newlines, tabs and carriage returns). About 2,400
cases, from this repository's own text plus generated lines:

- prose: the default model's held-out King James text (models/kjv/validation.txt) and the
  chapters (docs/*.md), line by line;
- code: runs of one to six consecutive lines of src/**/*.py, with their indentation and newlines;
- generated with a fixed seed: emoji (with skin tones, ZWJ sequences and flags), CJK (Chinese,
  kana, Hangul), whitespace runs (spaces, tabs, newlines, CR LF, no-break and ideographic spaces),
  numbers (long digit runs, decimals, grouped thousands, dates, other scripts' digits, full-width
  digits, fractions and superscripts), punctuation runs, contractions in several cases, mixed
  scripts (Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai, combining accents), URLs and
  special-token look-alikes such as "<|im_end|>".

Re-running on the same checkout gives the same file (sorted inputs, one seeded generator); the
committed file is what the tests read, so later edits to docs/ or src/ do not change the tests.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "tokenizer" / "corpus.jsonl"
SEED = 20240612
MAX_CHARS = 240  # long lines are cut, so the file stays small

EMOJI = ["😀", "😂", "🥲", "👍", "👍🏽", "👋🏿", "❤️", "🔥", "🎉", "🚀", "🌍", "🍕", "🐍", "🤖", "✨", "🙏",
         "👨‍👩‍👧‍👦", "🧑‍💻", "🏳️‍🌈", "🇫🇷", "🇯🇵", "🇺🇸", "☕", "⚡", "🦀", "🧪", "📈", "🔒", "👀", "💯"]
CJK = ["你好，世界", "我爱自然语言处理。", "今天天气很好", "機械学習", "こんにちは", "ありがとうございます",
       "カタカナとひらがな", "東京は日本の首都です", "안녕하세요", "한국어 토큰화", "中文、日本語、한국어",
       "「引用」と『二重引用』", "数字１２３と漢字", "漢字かな交じり文", "龍", "鬱", "𠀋𠂉"]
SCRIPTS = ["Привет, мир!", "Съешь же ещё этих мягких французских булок", "Γειά σου Κόσμε", "αβγδε ΑΒΓΔΕ",
           "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới",
           "Zażółć gęślą jaźń", "Ångström, naïve café, façade, Übermensch", "e\u0301 a\u0300 o\u0308 n\u0303",
           "ﬁ ﬂ ﬀ", "Ǆ ǅ ǆ", "İstanbul ılık", "straße STRASSE", "ø æ å Ø Æ Å", "Ελληνικά και English"]
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "token", "model", "byte", "pair",
         "encoding", "Llama", "SmolLM", "GGUF", "tensor", "prompt", "chat", "template", "unicode", "emoji",
         "Hello", "WORLD", "CamelCase", "snake_case", "kebab-case", "x", "I", "a"]
CONTRACTIONS = ["don't", "DON'T", "I'm", "I'M", "you're", "YOU'RE", "we've", "they'll", "she'd", "it's",
                "IT'S", "o'clock", "rock 'n' roll", "'tis", "y'all", "can't", "won't", "'s", "'S", "'ll"]
PUNCT = ["...", "!!!", "?!", "--", "—", "–", "…", "«»", "“quoted”", "‘single’", "(parens)", "[brackets]",
         "{braces}", "<angle>", "@#$%^&*", "~`|\\", "::", "->", "=>", "!=", "<=", ">=", "//", "/* */", "#!",
         "¿Qué?", "¡Hola!", "§ ¶ † ‡", "© ® ™", "° ± × ÷", "€ £ ¥ ₹ ₿"]
LOOKALIKES = ["<|im_end|>", "<|im_start|>user", "<|endoftext|>", "<s>", "</s>", "<unk>", "<0x41>",
              "<|eot_id|>", "<|begin_of_text|>", "[INST]", "<<SYS>>", "<think>", "<|im_end", "im_end|>"]
SPACES = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\u00a0", "\u3000",
          "\u2009", "  \t \n"]
DIGIT_STYLES = ["٠١٢٣٤٥٦٧٨٩", "۰۱۲۳", "०१२३४", "１２３４５", "½ ¼ ¾", "x² y³ z¹", "Ⅳ Ⅻ", "①②③", "𝟙𝟚𝟛"]


def prose_lines(rng: random.Random, chapter_lines: int) -> list[str]:
    """All of the held-out King James text, and a sample of the chapters' lines in their order."""
    lines = [line for line in (REPO / "models" / "kjv" / "validation.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    docs: list[str] = []
    for chapter in sorted((REPO / "docs").glob("*.md")):
        docs += [line for line in chapter.read_text(encoding="utf-8").splitlines() if line.strip()]
    keep = sorted(rng.sample(range(len(docs)), min(chapter_lines, len(docs))))
    return [line[:MAX_CHARS] for line in lines + [docs[i] for i in keep]]


def code_chunks(rng: random.Random, count: int) -> list[str]:
    files = sorted((REPO / "src").rglob("*.py"))
    lines_by_file = [f.read_text(encoding="utf-8").splitlines() for f in files]
    chunks: list[str] = []
    while len(chunks) < count:
        lines = rng.choice(lines_by_file)
        if not lines:
            continue
        start = rng.randrange(len(lines))
        chunk = "\n".join(lines[start : start + rng.randint(1, 6)])
        if chunk.strip():
            chunks.append(chunk[:MAX_CHARS])
    return chunks


def number(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return str(rng.randrange(10 ** rng.randint(1, 20)))
    if kind == 1:
        return f"{rng.uniform(-1000, 1000):.{rng.randint(1, 6)}f}"
    if kind == 2:
        return f"{rng.randrange(10**9):,}"
    if kind == 3:
        return f"{rng.randint(1900, 2099)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == 4:
        return f"+1 ({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
    if kind == 5:
        return f"{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
    if kind == 6:
        return f"{rng.random():.3e}"
    return rng.choice(DIGIT_STYLES)


def generated_line(rng: random.Random) -> str:
    pools = [
        lambda: rng.choice(WORDS),
        lambda: rng.choice(EMOJI) * rng.randint(1, 3),
        lambda: rng.choice(CJK),
        lambda: rng.choice(SCRIPTS),
        lambda: rng.choice(CONTRACTIONS),
        lambda: rng.choice(PUNCT),
        lambda: rng.choice(LOOKALIKES),
        lambda: number(rng),
        lambda: rng.choice(SPACES) * rng.randint(1, 4),
        lambda: "https://example.org/path?q=" + rng.choice(WORDS) + "&n=" + str(rng.randrange(1000)),
    ]
    parts = [rng.choice(pools)() for _ in range(rng.randint(1, 8))]
    glue = [rng.choice(["", " ", " ", "  ", "\t", "\n"]) for _ in parts]
    return "".join(g + p for g, p in zip(glue, parts, strict=True))[:MAX_CHARS]


def special_lines() -> list[str]:
    """Edge cases written out: runs of one character, whitespace alone, long numbers."""
    return [
        " " * 40, "\t" * 12, "\n" * 9, "\r\n" * 5, "a" * 200, "1" * 120, "!" * 64, "😀" * 30, "你" * 50,
        " leading space", "trailing space ", "  both  ", "\n\nnewlines first", "newlines last\n\n",
        "tab\tinside", "mixed \t\n\r\n whitespace \u00a0\u3000 run", "1,000,000.00", "3.14159265358979323846",
        "0x1F600 0b1010 0o777 1e-9 -42 +7", "2024-06-12T08:30:00Z", "x = [1, 2, 3]  # comment",
        "    def f(self) -> None:\n        return None\n", "if (a && b || !c) { return a->b; }",
    ]


def main() -> int:
    rng = random.Random(SEED)
    cases = prose_lines(rng, 600) + code_chunks(rng, 420) + special_lines()
    cases += [generated_line(rng) for _ in range(900)]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as out:
        for case in cases:
            out.write(json.dumps(case, ensure_ascii=False) + "\n")
    print(f"wrote {len(cases)} cases to {OUT.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
