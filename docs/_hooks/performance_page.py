"""mkdocs hook: chapter 18 links to docs/PERFORMANCE.md, the benchmark report kept with bench/.

That page has its own owner and may be written after the chapters; until it exists, the site gets
a short generated stand-in, so `mkdocs build --strict` and the link from chapter 18 keep working.
The real file, when present, is used as is.
"""

from __future__ import annotations

from mkdocs.structure.files import File, Files

REPORT = "PERFORMANCE.md"
STAND_IN = """# Performance report

The measured results are not written yet. Run the benchmarks yourself:

- `python -m bench.decode --shape 110M --dtype bf16` for decode and prefill speed against the
  machine's memory bandwidth (add `--profile` for the time per stage);
- `python -m bench.load` for load time and resident memory.

Chapter 18 explains what limits the speed.
"""


def on_files(files: Files, config, **_kwargs) -> Files:  # type: ignore[no-untyped-def]
    if files.get_file_from_path(REPORT) is None:
        files.append(File.generated(config, REPORT, content=STAND_IN))
    return files
