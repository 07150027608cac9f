"""The documentation site builds with `mkdocs build --strict`, and the built site works offline.

- every page in the nav, no broken link or image, the Mermaid fence configured;
- the built site loads nothing from the network: every HTML page, stylesheet and script is scanned
  for resources (scripts, stylesheets, fonts, images, frames) with an http(s):// or //host address;
  only plain links to other pages (`<a href>`) may point outside. Mermaid is served from the site
  (docs/_hooks/mermaid_local.py, the npm package pinned in docs/_mermaid/);
- where Chromium is installed: every page opened from disk with the network shut off renders all
  its diagrams, each at least 0.75 of its natural size in a 1400 px wide window (text of 12 px or
  more), measured in the browser.

Skips: mkdocs or its theme not installed (`pip install -e ".[docs]"`); the offline checks without
the Mermaid bundle (`npm ci --prefix docs/_mermaid --no-audit --no-fund --ignore-scripts`); the
browser checks without Chromium (Debian's `chromium` package).
No `-q` for mkdocs: it counts warnings for --strict only when they are logged, and -q silences them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MERMAID_BUNDLE = REPO / "docs" / "_mermaid" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
MERMAID_INSTALL = "npm ci --prefix docs/_mermaid --no-audit --no-fund --ignore-scripts"
MIN_DIAGRAM_SCALE = 0.75  # Mermaid writes 16 px text: at 0.75 it shows at 12 px
WINDOW_WIDTH = 1400


def test_every_chapter_is_in_the_nav() -> None:
    nav = re.findall(r":\s*([\w.-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(encoding="utf-8"), re.MULTILINE)
    chapters = sorted({p.name for p in (REPO / "docs").glob("*.md")} | {"PERFORMANCE.md"})
    assert sorted(nav) == chapters  # the benchmark report is listed too (a stand-in while absent)
    assert nav[0] == "index.md" and nav[-1] == "20-diagrams.md"


def test_nav_numbers_are_unique() -> None:
    """Each chapter number appears once in the nav (the report is unnumbered, under chapter 18)."""
    titles = re.findall(r"^\s*-\s*\"?([^:\"]+?)\"?:\s*[\w.-]+\.md\s*$", (REPO / "mkdocs.yml").read_text(encoding="utf-8"), re.MULTILINE)
    numbers = [m.group(1) for t in titles if (m := re.match(r"(\d[\d-]*[a-z]?)\s", t))]
    assert len(numbers) == len(set(numbers)), f"a chapter number is used twice in the nav: {numbers}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("mkdocs") is None:
        try:
            import mkdocs  # noqa: F401
        except ImportError:
            pytest.skip('mkdocs is not installed (pip install -e ".[docs]")')
    try:
        import material  # noqa: F401
    except ImportError:
        pytest.skip('mkdocs-material is not installed (pip install -e ".[docs]")')
    out = tmp_path_factory.mktemp("site") / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_mkdocs_build_strict(site: Path) -> None:
    page = (site / "14-making-a-prediction-attention" / "index.html").read_text(encoding="utf-8")
    assert 'class="mermaid"' in page  # the custom fence turned ```mermaid into a diagram
    assert (site / "figures" / "attention-scores.png").is_file()
    # Chapter 18's link to the benchmark report resolves: the real docs/PERFORMANCE.md, or the
    # stand-in docs/_hooks/performance_page.py generates while it is absent.
    assert (site / "PERFORMANCE" / "index.html").is_file()


# ---- nothing from the network ---------------------------------------------------------------------
REMOTE = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
# Attributes through which a page loads something (an <a href> only links: allowed).
LOADING_ATTRIBUTES = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "iframe": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
    "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"),
    "feimage": ("href", "xlink:href"),
}
LINK_LOADS = {"stylesheet", "icon", "shortcut", "apple-touch-icon", "preload", "modulepreload", "prefetch", "preconnect", "dns-prefetch", "manifest", "mask-icon"}
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.IGNORECASE)
# In scripts: a string literal that is a remote address of something a browser would load.
JS_RESOURCE = re.compile(
    r"""["'`]((?:https?:)?//[^"'`\s]+?\.(?:m?js|css|woff2?|ttf|otf|eot|png|jpe?g|gif|svg|webp|ico|json|wasm)(?:\?[^"'`\s]*)?)["'`]""",
    re.IGNORECASE,
)
JS_LOADER_CALL = re.compile(r"""(?:fetch|importScripts|import|Worker|EventSource|WebSocket|sendBeacon)\(\s*["'`]((?:https?:|wss?:)?//[^"'`]+)""")
# Addresses in Material's bundle that a page of this site never loads, and why.
KNOWN_UNUSED = {
    "https://unpkg.com/mermaid@11/dist/mermaid.min.js": "Material's fallback, loaded only when the global `mermaid` is undefined; every page with a diagram loads the site's own copy first (checked below)",
}
KNOWN_UNUSED_PREFIXES = {
    "https://unpkg.com/resize-observer-polyfill": "loaded only where the browser has no ResizeObserver",
    "https://api.github.com/": "repository facts, fetched only when mkdocs.yml sets repo_url (it does not, checked below)",
}


class _ResourceScanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.remote: list[str] = []
        self.scripts: list[str] = []  # the src of every <script>, in order
        self.inline: list[tuple[str, str]] = []  # ("script" or "style", text) of inline blocks
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        for name in LOADING_ATTRIBUTES.get(tag, ()):
            for candidate in re.split(r",\s*", values.get(name, "")):
                if REMOTE.match(candidate):
                    self.remote.append(f"<{tag} {name}={candidate!r}>")
        if tag == "link" and LINK_LOADS & set(values.get("rel", "").lower().split()) and REMOTE.match(values.get("href", "")):
            self.remote.append(f"<link rel={values.get('rel')!r} href={values['href']!r}>")
        if "style" in values:
            self.remote += [f"style attribute url {u}" for u in CSS_URL.findall(values["style"])]
        if tag == "script" and values.get("src"):
            self.scripts.append(values["src"])
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.inline.append((self._in, data))


def _allowed_js_address(url: str) -> bool:
    return url in KNOWN_UNUSED or any(url.startswith(p) for p in KNOWN_UNUSED_PREFIXES)


def _remote_loads_in_script(text: str) -> list[str]:
    found = [u for u in JS_RESOURCE.findall(text) + JS_LOADER_CALL.findall(text) if not _allowed_js_address(u)]
    return sorted(set(found))


def scan_site(site: Path) -> list[str]:
    """Every resource of the built site that would be loaded from the network, with where it is."""
    problems: list[str] = []
    for path in sorted(site.rglob("*")):
        where = path.relative_to(site)
        if path.suffix == ".html":
            scanner = _ResourceScanner()
            scanner.feed(path.read_text(encoding="utf-8"))
            problems += [f"{where}: {r}" for r in scanner.remote]
            for kind, text in scanner.inline:
                if kind == "style":
                    problems += [f"{where}: inline style url {u}" for u in CSS_URL.findall(text)]
                else:
                    problems += [f"{where}: inline script loads {u}" for u in _remote_loads_in_script(text)]
        elif path.suffix == ".css":
            problems += [f"{where}: url {u}" for u in CSS_URL.findall(path.read_text(encoding="utf-8", errors="replace"))]
        elif path.suffix in (".js", ".mjs"):
            problems += [f"{where}: loads {u}" for u in _remote_loads_in_script(path.read_text(encoding="utf-8", errors="replace"))]
    return problems


def test_scanner_finds_remote_resources(tmp_path: Path) -> None:
    """The scanner itself: each kind of remote load is found, links and local files are not."""
    (tmp_path / "index.html").write_text(
        '<html><head><link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
        '<script src="//cdn.example.org/x.js"></script><link rel="next" href="https://example.org/">'
        '<style>body{background:url("https://example.org/b.png")}</style></head>'
        '<body><img src="https://example.org/a.png"><img src="local.png">'
        '<a href="https://arxiv.org/abs/2307.09288">a paper</a>'
        "<script>fetch('https://api.example.org/data')</script></body></html>",
        encoding="utf-8",
    )
    (tmp_path / "a.css").write_text("@import 'https://example.org/f.css'; .x{src:url(fonts/local.woff2)}", encoding="utf-8")
    (tmp_path / "b.js").write_text('var u="https://unpkg.com/mermaid@11/dist/mermaid.min.js", v="https://cdn.example.org/lib.js", w="https://example.org/docs.html";', encoding="utf-8")
    problems = scan_site(tmp_path)
    text = "\n".join(problems)
    for wanted in ("fonts.googleapis.com", "cdn.example.org/x.js", "b.png", "example.org/a.png", "api.example.org/data", "f.css", "cdn.example.org/lib.js"):
        assert wanted in text, (wanted, problems)
    for unwanted in ("arxiv.org", "local.png", "local.woff2", "unpkg.com/mermaid", "docs.html", 'href="https://example.org/"'):
        assert unwanted not in text, (unwanted, problems)
    assert len(problems) == 7


def _require_bundle() -> None:
    if not MERMAID_BUNDLE.is_file():
        pytest.skip(f"Mermaid is not bundled, the site would load it from a CDN: run `{MERMAID_INSTALL}`")


def test_built_site_loads_nothing_from_the_network(site: Path) -> None:
    _require_bundle()
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    assert not re.search(r"^repo_url:", config, re.MULTILINE), "repo_url makes Material fetch from api.github.com"
    assert re.search(r"^\s+font:\s*false\s*$", config, re.MULTILINE), "theme.font must be false (Material loads Google Fonts otherwise)"
    problems = scan_site(site)
    assert not problems, "the built site loads from the network:\n" + "\n".join(problems)


def test_every_diagram_page_loads_the_local_mermaid(site: Path) -> None:
    _require_bundle()
    assert (site / "javascripts" / "mermaid.min.js").read_bytes() == MERMAID_BUNDLE.read_bytes()
    bundle = next((site / "assets" / "javascripts").glob("bundle.*.min.js")).read_text(encoding="utf-8")
    # What makes the local copy win: Material looks for the global before it reaches for its CDN.
    assert 'typeof mermaid=="undefined"' in bundle
    pages = [p for p in site.rglob("*.html") if 'class="mermaid"' in p.read_text(encoding="utf-8")]
    assert len(pages) >= 10
    for page in pages:
        scanner = _ResourceScanner()
        scanner.feed(page.read_text(encoding="utf-8"))
        assert any(s.endswith("javascripts/mermaid.min.js") for s in scanner.scripts), page


# ---- in a browser, from disk, with the network shut off --------------------------------------------
PROBE = """<script>
(function () {
  // Material draws each diagram into a closed shadow root; open it so the probe can measure.
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (o) { return attach.call(this, Object.assign({}, o, {mode: "open"})); };
  window.addEventListener("load", () => setTimeout(function () {
    const out = [];
    document.querySelectorAll("div.mermaid").forEach((d, i) => {
      const svg = d.shadowRoot && d.shadowRoot.querySelector("svg");
      if (!svg) { out.push({i: i, error: "no svg"}); return; }
      const shown = svg.getBoundingClientRect().width, natural = svg.viewBox.baseVal.width;
      out.push({i: i, natural: natural, shown: shown, scale: shown / natural});
    });
    const p = document.createElement("pre");
    p.id = "diagram-probe";
    p.textContent = JSON.stringify({unrendered: document.querySelectorAll("pre.mermaid").length, diagrams: out});
    document.body.appendChild(p);
  }, 5000));
})();
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("Chromium is not installed (Debian package `chromium`): the in-browser checks need it")


def _render_offline(browser: str, page: Path) -> dict:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}",
                # the network shut off: every host unresolvable, every connection to a dead proxy
                "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
                f"--window-size={WINDOW_WIDTH},900", "--virtual-time-budget=20000", "--dump-dom", page.as_uri(),
            ],
            capture_output=True, text=True, timeout=180,
        )
    m = re.search(r'<pre id="diagram-probe">(.*?)</pre>', result.stdout, re.S)
    assert m, f"{page}: the probe wrote nothing\n{result.stderr[-2000:]}"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_diagrams_render_offline_and_readable_at_1400px(site: Path) -> None:
    _require_bundle()
    browser = _chromium()
    problems = []
    measured = 0
    for page in sorted(site.rglob("index.html")):
        html = page.read_text(encoding="utf-8")
        if 'class="mermaid"' not in html or page.parent.name == "20-diagrams":  # 20 repeats the chapters' diagrams
            continue
        probe = page.with_name("probe.html")
        probe.write_text(html.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
        report = _render_offline(browser, probe)
        name = page.parent.relative_to(site)
        if report["unrendered"]:
            problems.append(f"{name}: {report['unrendered']} diagram(s) not rendered (Mermaid missing, or a syntax error)")
        for d in report["diagrams"]:
            measured += 1
            if "error" in d:
                problems.append(f"{name}: diagram {d['i']}: {d['error']}")
            elif d["scale"] < MIN_DIAGRAM_SCALE:
                problems.append(
                    f"{name}: diagram {d['i'] + 1} is {d['natural']:.0f} px wide, shown at {d['scale']:.2f} of its size "
                    f"in a {WINDOW_WIDTH} px window: split it or draw it top-down"
                )
    assert measured >= 10
    assert not problems, "\n".join(problems)
