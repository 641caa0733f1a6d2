"""The built book: every chapter rendered with figures and ANOVA tables, in a real browser.

The book is built once per test session on the ``tiny`` profile (papermill
executes every chapter with tiny parameters, Jupyter Book renders them
strictly).  Runs and HTML go to a temporary folder, never into the checkout.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nrg.book import build as book

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS_WITH_ANOVA = ("01_model_comparison", "02_sequence_length", "05_batch_size")
# A test of the built book (the `built` fixture) is marked book and slow by tests/conftest.py.


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> book.BuildReport:
    out = tmp_path_factory.mktemp("book")
    os.environ["NRG_RUNS_DIR"] = str(out / "runs")
    report = book.build(ROOT, profile="tiny", out=out)
    artefacts = ROOT / "_build" / "test-artefacts"
    artefacts.mkdir(parents=True, exist_ok=True)
    for executed in (out / "_build" / "src" / "notebooks").glob("*.ipynb"):
        shutil.copy2(executed, artefacts / executed.name)  # execution reports kept
    assert not report.failed, f"chapters failed: {report.failed}"
    assert report.sphinx_ok, "jupyter-book strict build reported warnings or errors"
    return report


def _page(built: book.BuildReport, chapter: str) -> str:
    return (built.html_dir / "notebooks" / f"{chapter}.html").read_text()


def test_every_chapter_is_rendered(built: book.BuildReport) -> None:
    for chapter in book.chapters(ROOT):
        assert (built.html_dir / "notebooks" / f"{chapter}.html").is_file(), chapter
    assert (built.html_dir / "index.html").is_file()


@pytest.mark.parametrize("chapter", CHAPTERS_WITH_ANOVA)
def test_chapter_has_figure_and_anova_table(built: book.BuildReport, chapter: str) -> None:
    html = _page(built, chapter)
    assert re.search(r"<img [^>]*src=\"[^\"]+\.png\"", html), "no figure"
    assert "partial_eta_sq" in html or "partial η²" in html, "no ANOVA table"


def _executed(built: book.BuildReport, chapter: str) -> list[dict[str, Any]]:
    """The cells of ``chapter``'s executed notebook in the build (what the page was rendered from)."""
    cells: list[dict[str, Any]] = json.loads(
        (built.html_dir.parents[1] / "_build" / "src" / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
    return cells


def test_chapter_4_ranks_configurations_and_lists_what_did_not_run(built: book.BuildReport) -> None:
    """Chapter 4 on the tiny profile: the ranking, the labelled Pareto column and figures, what did not run."""
    cells = _executed(built, "04_network_tickets")
    html = "".join("".join(o.get("data", {}).get("text/html", ""))
                   for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "Ranking R = w·φ + (1−w)·ρ" in html
    assert re.search(r"<th[^>]*>Pareto</th>", html)  # the column, labelled for the reader
    pareto_cells = [c for c in cells if c["cell_type"] == "code" and "pareto_figures(" in "".join(c["source"])]
    assert any("image/png" in o.get("data", {}) for c in pareto_cells for o in c.get("outputs", []))
    assert "unsupported" in html  # the table of what did not run
    assert (built.html_dir.parents[1] / "runs" / "04_network_tickets" / "cells").is_dir()   # the fixture's runs


def test_every_chapter_with_claims_shows_each_claim_with_a_verdict_for_the_live_run(built: book.BuildReport) -> None:
    """A chapter folder with a ``claims`` module puts its claims table on the page (chapter 5's was missing)."""
    from nrg.book import claims
    from nrg.errors import ParameterError

    shown = []
    for chapter in book.chapters(ROOT):
        try:
            listed = claims.claims_of(chapter)
        except ParameterError:          # the chapter checks no claim (chapter 0, the summary)
            continue
        markdown = "".join("".join(o.get("data", {}).get("text/markdown", ""))
                           for c in _executed(built, chapter) if c["cell_type"] == "code" for o in c.get("outputs", []))
        for claim in listed:
            assert claim.text in markdown, (chapter, claim.key)
        assert "verdict (this run)" in markdown, chapter
        shown.append(chapter)
    assert "05_batch_size" in shown and len(shown) >= 5


def test_executed_chapters_hold_no_widgets(built: book.BuildReport) -> None:
    """Widget bars would make the page fetch require.js from a CDN: the book must read offline."""
    for path in (built.html_dir.parent / "src" / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        mimes = {m for c in nb["cells"] for o in c.get("outputs", []) for m in o.get("data", {})}
        assert not [m for m in mimes if "widget" in m], f"{path.name}: {mimes}"
        html = _page(built, path.stem)
        assert "cdn.jsdelivr.net" not in html and "require.min.js" not in html, path.stem


def test_source_notebooks_carry_no_outputs() -> None:
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs"), f"{path.name} has outputs"
                assert cell.get("execution_count") is None, f"{path.name} has execution counts"
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"


@pytest.mark.slow
@pytest.mark.process
@pytest.mark.timeout(1200)   # papermill gets 900 s below
def test_readme_papermill_command_works(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.strip().startswith("papermill notebooks/"))
    args = shlex.split(line.strip())
    args[2] = str(tmp_path / "out.ipynb")
    env = {**os.environ, "NRG_RUNS_DIR": str(tmp_path / "runs")}
    papermill = Path(sys.executable).with_name("papermill")
    result = subprocess.run([str(papermill), *args[1:]], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    nb = json.loads((tmp_path / "out.ipynb").read_text())
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


@pytest.mark.process
def test_papermill_with_a_misspelt_parameter_fails_before_measuring(tmp_path: Path) -> None:
    env = {**os.environ, "NRG_RUNS_DIR": str(tmp_path / "runs")}
    papermill = Path(sys.executable).with_name("papermill")
    result = subprocess.run([str(papermill), "notebooks/01_model_comparison.ipynb",
                             str(tmp_path / "out.ipynb"), "-p", "output_token", "8"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "['output_token']" in result.stderr and "valid parameters are" in result.stderr
    assert not (tmp_path / "runs").exists(), "nothing may be measured or written"


def test_unknown_parameter_fails_listing_valid_names(tmp_path: Path) -> None:
    with pytest.raises(book.ParameterError, match="valid parameters are"):
        book.execute_chapter(ROOT, "01_model_comparison", tmp_path / "x.ipynb", {"modle": ["gpt2"]})
    assert not (tmp_path / "x.ipynb").exists()


@pytest.mark.parametrize("profile", ["tiny", "cpu", "gpu-paper"])
def test_profiles_name_only_declared_parameters(profile: str) -> None:
    for chapter, params in book.load_profile(ROOT, profile).items():
        declared = book.declared_parameters(book.notebook_path(ROOT, chapter))
        assert not set(params) - set(declared), (profile, chapter, set(params) - set(declared))


def test_unknown_chapter_and_profile_list_the_valid_ones() -> None:
    with pytest.raises(book.ParameterError, match="01_model_comparison"):
        book.notebook_path(ROOT, "01_nope")
    with pytest.raises(book.ParameterError, match="'cpu'"):
        book.load_profile(ROOT, "nope")


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WIDTHS = (1280, 390)   # a laptop, a phone
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
                                    reason="Debian's chromium is not installed (make test installs it)")

# MathJax has typeset every formula (it loads its fonts after the page's network is idle).
MATH_DONE_JS = "() => !window.MathJax || !MathJax.Hub || (MathJax.isReady === true && MathJax.Hub.queue.pending === 0)"

# Every figure and table inside the article's column, or scrolling in its own box.
LAYOUT_JS = """() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main');
  const box = article.getBoundingClientRect();
  const bad = [];
  for (const el of document.querySelectorAll('.cell_output img, .cell_output table, .cell_output .output')) {
    if (el.tagName === 'IMG' && el.closest('.nrg-scroll')) continue;   // a wide figure scrolls in its own box
    const r = el.getBoundingClientRect();
    if (r.width === 0) continue;
    const name = el.tagName + '.' + el.className + ' ' + (el.getAttribute('src') || '').slice(-40);
    if (r.left < box.left - 1 || r.right > box.right + 1)
      bad.push(`${name}: ${Math.round(r.left)}..${Math.round(r.right)} outside ${Math.round(box.left)}..${Math.round(box.right)}`);
    const ox = getComputedStyle(el).overflowX;
    if (el.scrollWidth > el.clientWidth + 1 && ox !== 'auto' && ox !== 'scroll')
      bad.push(`${name}: content ${el.scrollWidth}px in ${el.clientWidth}px, clipped (overflow-x ${ox})`);
  }
  return {bad, page: document.documentElement.scrollWidth - window.innerWidth,
          links: [...document.querySelectorAll('a.download')].map(a => a.href),
          figures: document.querySelectorAll('.cell_output img').length,
          tables: [...document.querySelectorAll('.cell_output table td')].map(td => td.innerText.trim()),
          headers: [...document.querySelectorAll('.cell_output table th')].map(th => th.innerText.trim()),
          text: document.querySelector('main').innerText};
}"""


@contextlib.contextmanager
def _browser(built: book.BuildReport) -> Iterator[tuple[Any, str]]:
    """Headless Chromium and the built book served on loopback; both closed however the test ends."""
    from playwright.sync_api import sync_playwright

    server, base_url = _serve(built.html_dir)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser, base_url
        finally:
            browser.close()
            server.shutdown()


def _visit(browser: Any, base_url: str, chapter: str, width: int, shots: Path) -> dict[str, Any]:
    """Everything the browser tests read from one chapter's page at ``width`` px, loaded once.

    Console errors and failed scripts are recorded from before the page loads; the
    image sizes once the network is idle; the layout and the reading checks (whose
    scripts only read the page) once MathJax has typeset (its failure to finish is kept
    for the test that needs it, so it does not hide what the others check).
    """
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{base_url}/notebooks/{chapter}.html")
        page.wait_for_load_state("networkidle")
        widths = page.eval_on_selector_all("main img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        math_error = None
        try:
            page.wait_for_function(MATH_DONE_JS, timeout=60_000)
        except Exception as exc:  # reported by the test that checks typesetting
            math_error = f"MathJax did not finish: {exc}"
        layout, reading = page.evaluate(LAYOUT_JS), page.evaluate(READING_JS)
        page.screenshot(path=str(shots / f"{chapter}-{width}px.png"), full_page=True)
        statuses = {href: page.request.get(href).status for href in layout["links"]}
        folded = page.eval_on_selector_all(".cell.tag_hide-input", "cells => cells.length")
    finally:
        page.close()
    return {"errors": errors, "image_widths": widths, "math_error": math_error, "layout": layout,
            "reading": reading, "statuses": statuses, "folded": folded}


@pytest.fixture(scope="module")
def visits(built: book.BuildReport) -> Iterator[Any]:
    """``visits(width)``: every chapter's page read at ``width`` px, each page loaded once per width.

    The browser tests only read pages, so one browser and one load per chapter and
    width serve all of them (they used to launch Chromium and load every page once per
    test: five loads of each page instead of two).
    """
    shots = ROOT / "_build" / "test-artefacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    seen: dict[int, dict[str, dict[str, Any]]] = {}
    with _browser(built) as (browser, base_url):
        def at(width: int) -> dict[str, dict[str, Any]]:
            if width not in seen:
                seen[width] = {chapter: _visit(browser, base_url, chapter, width, shots)
                               for chapter in book.chapters(ROOT)}
            return seen[width]

        yield at


@needs_chromium
def test_chapters_load_in_a_real_browser(built: book.BuildReport, visits: Any) -> None:
    for chapter, seen in visits(WIDTHS[0]).items():
        assert all(w > 0 for w in seen["image_widths"]), f"{chapter}: an image did not render {seen['image_widths']}"
        assert not seen["errors"], f"{chapter}: console errors {seen['errors']}"


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_pages_read_well_at_laptop_and_phone_width(built: book.BuildReport, visits: Any, width: int) -> None:
    """Nothing clipped or wider than the page; every data link resolves; no bar residue; readable tables."""
    for chapter, seen in visits(width).items():
        found = seen["layout"]
        assert seen["math_error"] is None, f"{chapter} at {width}px: {seen['math_error']}"
        assert not found["bad"], f"{chapter} at {width}px: {found['bad']}"
        assert found["page"] <= 1, f"{chapter} at {width}px: the page scrolls sideways by {found['page']}px"
        _check_content(chapter, found, seen["statuses"], seen["folded"])


def _significant_digits(text: str) -> int:
    return len(text.lstrip("-−").replace(".", "").lstrip("0"))


def _check_content(chapter: str, found: dict[str, Any], statuses: dict[str, int], folded: int) -> None:
    if found["figures"] or found["tables"]:
        csv = [h for h in found["links"] if h.endswith(".csv")]
        parquet = [h for h in found["links"] if h.endswith(".parquet") and not h.endswith("-rows.parquet")]
        assert csv and len(csv) == len(parquet), f"{chapter}: figures and tables without their data links"
    broken = {href: code for href, code in statuses.items() if code != 200}
    assert not broken, f"{chapter}: data links that do not resolve: {broken}"
    assert "What this chapter found" in found["text"] or "The answer" in found["text"], f"{chapter}: no findings box"
    assert "\\(" not in found["text"] and "\\[" not in found["text"], f"{chapter}: raw TeX in the page"
    residue = re.findall(r".{0,40}(?:\d+%\||\?(?:cell|it)/s\]|it/s\]).{0,20}", found["text"])
    assert not residue, f"{chapter}: progress-bar residue in the page: {residue[:3]}"
    long = [t for t in found["tables"] if re.fullmatch(r"[-−]?\d+\.\d+", t) and _significant_digits(t) > 4]
    assert not long, f"{chapter}: table cells with more than four significant figures: {long[:5]}"
    assert folded >= 2, f"{chapter}: the setup cells are not folded (hide-input)"
    rows = [h for h in found["links"] if h.endswith("-rows.parquet")]
    assert len(rows) == 1 and statuses[rows[0]] == 200, f"{chapter}: no download of the chapter's raw rows"


# Where the answer sits, and what a reader must never see (run in the page after it has loaded).
READING_JS = """() => {
  const visible = el => el.getClientRects().length > 0 && !el.closest('details:not([open])');
  const top = el => el.getBoundingClientRect().top + window.scrollY;
  const titles = [...document.querySelectorAll('.admonition-title')];
  const box = titles.find(t => /What this chapter found|The answer/.test(t.innerText));
  const long = [...document.querySelectorAll('main table')].filter(
      t => visible(t) && t.querySelectorAll('tbody tr').length > 10);
  const text = document.querySelector('main').innerText;
  const warnings = (text.match(/^.*\\b\\w*Warning\\b: .*$|^Traceback .*$/gm) || []).slice(0, 3);
  const stderr = [...document.querySelectorAll('main .stderr')].filter(visible).map(e => e.innerText.slice(0, 120));
  const verdicts = [...document.querySelectorAll('main th')].filter(th => /verdict/i.test(th.innerText) && visible(th))
      .map(th => {
        let clip = document.querySelector('article.bd-article') || document.querySelector('main');
        for (let el = th.parentElement; el; el = el.parentElement) {
          const ox = getComputedStyle(el).overflowX;
          if (ox === 'auto' || ox === 'scroll' || ox === 'hidden') { clip = el; break; }
        }
        const r = th.getBoundingClientRect(), c = clip.getBoundingClientRect();
        return {text: th.innerText, visible: r.left >= c.left - 1 && r.right <= c.right + 1};
      });
  const figures = [...document.querySelectorAll('.cell_output img')].filter(visible).map(img => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let coloured = 0;
    for (let i = 0; i < px.length; i += 4 * 7) {
      if (Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]) > 60) coloured++;
    }
    return {src: img.getAttribute('src').slice(-50), scale: img.clientWidth / img.naturalWidth, coloured};
  });
  return {box: box ? top(box) : null, long: long.length ? Math.min(...long.map(top)) : null,
          warnings, stderr, verdicts, figures};
}"""


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_the_answer_comes_first_and_nothing_broken_shows(built: book.BuildReport, visits: Any, width: int) -> None:
    """Findings box above the first long table; no warning text; no empty figure; verdicts in view; legible figures."""
    problems: list[str] = []
    for chapter, seen in visits(width).items():
        problems += _reading_problems(chapter, width, seen["reading"])
    assert not problems, "\n".join(problems)


def _reading_problems(chapter: str, width: int, found: dict[str, Any]) -> list[str]:
    out = []
    if found["box"] is None:
        out.append(f"{chapter}: no findings box")
    elif found["long"] is not None and found["long"] < found["box"]:
        out.append(f"{chapter} at {width}px: a long table at {found['long']:.0f}px before the box at {found['box']:.0f}px")
    if found["warnings"] or found["stderr"]:
        out.append(f"{chapter}: warning text on the page: {found['warnings'] + found['stderr']}")
    out += [f"{chapter}: figure without any drawn data {f['src']}" for f in found["figures"] if f["coloured"] < 20]
    if width >= 1280:
        out += [f"{chapter} at {width}px: column {v['text']!r} is scrolled out of view"
                for v in found["verdicts"] if not v["visible"]]
    if width <= 390:
        out += [f"{chapter} at {width}px: figure {f['src']} shown at {f['scale']:.2f} of its size: text too small"
                for f in found["figures"] if f["scale"] < 0.4]
    return out


def test_tables_carry_units_in_their_headers(built: book.BuildReport) -> None:
    html = _page(built, "02_sequence_length")
    # "Estimated energy (J)" where energy is estimated from time (as on a machine without counters)
    assert re.search(r"(Estimated e|E)nergy \(J\)", html) and re.search(r"(Estimated e|E)nergy per token \(J/token\)", html)
    assert "Batch size" in _page(built, "05_batch_size")


def _serve(folder: Path) -> tuple[Any, str]:
    """Serve the built HTML on a loopback port, as a reader's web server would."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
