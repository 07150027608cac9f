"""Write models/kjv/corpus_words.txt: every word (run of letters) of the default model's training text.

    python -m tools.make_corpus_words

The word check of the default model (tests/default_model/) asks that generated words occur in the
corpus; the corpus itself comes from Debian's bible-kjv package, which a user's machine (or CI's)
need not have, so the sorted list of its distinct words is committed instead (about 13 thousand
words; the King James text is in the public domain). Needs the Debian package and PyTorch (the
training script's corpus functions live beside its model code).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tools.train_default_model import extract_corpus, split_corpus

OUT = Path(__file__).resolve().parents[1] / "models" / "kjv" / "corpus_words.txt"
WORD = re.compile(r"[A-Za-z]+")  # the same word rule as train_default_model.word_coverage


def main() -> int:
    train_lines, _validation = split_corpus(extract_corpus())
    words = sorted({w for line in train_lines for w in WORD.findall(line)})
    OUT.write_text("\n".join(words) + "\n", encoding="utf-8")
    print(f"wrote {len(words)} words to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
