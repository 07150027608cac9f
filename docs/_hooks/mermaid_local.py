"""mkdocs hook: serve Mermaid from the site itself, so the diagrams render offline and from disk.

Material for MkDocs draws a ```mermaid fence with the global `mermaid` object, and fetches its own
copy from a CDN only when that global is undefined (its bundle tests `typeof mermaid == "undefined"`
before loading the remote script). So the site ships the pinned package's UMD build as
`javascripts/mermaid.min.js` and lists it in `extra_javascript`: the global exists before Material
looks, and no page asks the network for anything.

The package comes from npm, pinned by docs/_mermaid/package.json and package-lock.json:

    npm ci --prefix docs/_mermaid --no-audit --no-fund --ignore-scripts

When it is not installed, the build still succeeds (the page then falls back to Material's CDN
copy, which needs a network) and this hook says so in one line; tests/docs/test_docs_site.py skips
its offline checks with the same instruction.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mkdocs.structure.files import File, Files

BUNDLE = Path(__file__).resolve().parents[1] / "_mermaid" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
SITE_PATH = "javascripts/mermaid.min.js"
INSTALL = "npm ci --prefix docs/_mermaid --no-audit --no-fund --ignore-scripts"

log = logging.getLogger("mkdocs.hooks.mermaid_local")


def on_config(config, **_kwargs):  # type: ignore[no-untyped-def]
    if BUNDLE.is_file() and SITE_PATH not in [str(s) for s in config.extra_javascript]:
        config.extra_javascript.insert(0, SITE_PATH)
    elif not BUNDLE.is_file():
        # info, not warning: --strict must not fail for a reader without npm
        log.info("Mermaid is not bundled (%s): the diagrams will load Mermaid from a CDN", INSTALL)
    return config


def on_files(files: Files, config, **_kwargs) -> Files:  # type: ignore[no-untyped-def]
    if BUNDLE.is_file() and files.get_file_from_path(SITE_PATH) is None:
        files.append(File.generated(config, SITE_PATH, abs_src_path=str(BUNDLE)))
    return files
