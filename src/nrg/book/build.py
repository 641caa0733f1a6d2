"""Execute chapters headless through papermill and build the Jupyter Book.

Papermill only *warns* about a parameter the notebook does not declare, and a
bad value would surface minutes into a sweep.  Here every parameter is checked
against the notebook's ``parameters`` cell and the chapter's own validator
before anything runs or is written.  Executed copies go to a staging tree under
``_build/`` -- never back into ``notebooks/``, whose sources stay output-free --
and Jupyter Book renders that tree with ``execute_notebooks: "off"``.

A build keeps each executed chapter (with the data written beside it) under
``_build/executed/`` with a digest of everything its execution read
(:func:`execution_key`): the notebook, its parameters, nrg's code and data,
the installed versions, the machine, ``NRG_*`` variables, the chapter's run
folder, the reference results and ``notebooks/params``. The next build reuses a chapter whose
digest is unchanged instead of executing it again (``rerun=True``, ``nrg book
build --rerun`` or deleting that folder executes every chapter). Kept pages
keep their file times, so Sphinx reads only the pages that changed.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrg.errors import ParameterError, check_writable_dir, choice_error

BOOK_FILES: tuple[str, ...] = ("_config.yml", "_toc.yml", "book")
EXECUTED_DIR = "executed"      # under <out>/_build: each chapter's last executed page, its data, its key
KEY_FILE = "inputs.sha256"
# Provenance that changes between two identical builds (a clock under load, the time): not a key.
VOLATILE = ("started_at", "gpu_clock_mhz_current", "mem_clock_mhz_current", "git_sha", "hostname")


def chapters(root: Path) -> list[str]:
    """Chapter names: the notebooks' file stems, in book order."""
    return sorted(p.stem for p in (root / "notebooks").glob("*.ipynb"))


def notebook_path(root: Path, chapter: str) -> Path:
    """The source notebook of ``chapter``; an unknown name lists the chapters."""
    names = chapters(root)
    if chapter not in names:
        raise choice_error("chapter", chapter, names)
    return root / "notebooks" / f"{chapter}.ipynb"


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Name -> default value of the notebook's cell tagged ``parameters``.

    Read with :mod:`ast` rather than ``papermill.inspect_notebook``, which
    returns the defaults as source text ("None", "[1, 2]") and loses values.
    """
    import ast
    import json

    cells = json.loads(notebook.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ParameterError(f"{notebook.name}: expected one cell tagged 'parameters', found {len(tagged)}")
    source = "".join(tagged[0]["source"])
    params: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and node.value is not None:
                    params[target.id] = ast.literal_eval(node.value)
    return params


def profiles(root: Path) -> list[str]:
    """Names of the parameter profiles under ``notebooks/params/``."""
    return sorted(p.stem for p in (root / "notebooks" / "params").glob("*.yaml"))


def load_profile(root: Path, profile: str) -> dict[str, dict[str, Any]]:
    """Per-chapter parameters of a profile: a name under ``notebooks/params`` or a path."""
    from nrg.sweep import yaml_input

    path = Path(profile)
    if not path.suffix:
        if profile not in profiles(root):
            raise choice_error("profile", profile, profiles(root))
        path = root / "notebooks" / "params" / f"{profile}.yaml"
    if not path.is_file():
        raise ParameterError(f"profile={profile!r}: no such file {path}")
    yaml_input.check_size(f"profile={profile!r}", path.stat().st_size)
    data = yaml_input.load(path.read_text(), f"profile={profile!r}") or {}
    if not isinstance(data, dict):
        raise ParameterError(f"profile={profile!r} is not valid; expected chapter: {{parameters}}")
    unknown = sorted(set(data) - set(chapters(root)))
    if unknown:
        raise ParameterError(
            f"profile {path.name} names unknown chapters {unknown}; chapters are: {chapters(root)}")
    return {name: dict(values or {}) for name, values in data.items()}


def check_parameters(root: Path, chapter: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The chapter's checked parameters; fail before any work on an unknown name or a bad value."""
    declared = declared_parameters(notebook_path(root, chapter))
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ParameterError(
            f"chapter {chapter}: unknown parameter(s) {unknown}; valid parameters are: {sorted(declared)}")
    from nrg.book import chapters as chapter_checks

    return chapter_checks.validate(chapter, {**declared, **params})


def execute_chapter(root: Path, chapter: str, output: Path, params: Mapping[str, Any],
                    progress: bool = False) -> Path:
    """Run one chapter through papermill into ``output`` (parameters and output checked first)."""
    try:
        import papermill
    except ImportError:  # the book extra is optional: the package runs without Jupyter
        raise ParameterError("running a chapter needs papermill and a Jupyter kernel: pip install 'nrg[book]' "
                             "(or use `nrg sweep` / `nrg reference`, which need no Jupyter)") from None

    from nrg.book.params import checked_env
    from nrg.book.publish import page_env

    checked = check_parameters(root, chapter, params)
    check_output(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    # the kernel writes each figure's data beside this page, and trusts this process' machine check
    with page_env(output), checked_env(checked):
        papermill.execute_notebook(
            str(notebook_path(root, chapter)), str(output), parameters=dict(params),
            kernel_name="python3", cwd=str(root / "notebooks"), progress_bar=progress,
            coalesce_streams=True,  # one stream per cell, carriage returns applied: no bar residue
        )
    _fold_injected(output)
    return output


def check_output(output: Path) -> None:
    """The executed notebook's path: a ``.ipynb`` file that can be written (not a folder)."""
    if Path(output).suffix != ".ipynb":
        raise ParameterError(f"output={str(output)!r} is not valid; give a path ending in .ipynb")
    if Path(output).is_dir():
        raise ParameterError(f"output={str(output)!r} is not valid; it is a folder, give a .ipynb file")
    check_writable_dir("output", Path(output).parent)


def _fold_injected(output: Path) -> None:
    """Fold papermill's injected-parameters cell in the page, as the parameters cell is folded."""
    import json

    nb = json.loads(output.read_text())
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            cell["metadata"]["tags"] = [*tags, "hide-input"]
    output.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


@dataclass
class BuildReport:
    """What a book build did: per-chapter seconds, failures, where the HTML is."""

    html_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)   # chapters whose kept execution was current
    sphinx_ok: bool = True

    @property
    def ok(self) -> bool:
        """True when Sphinx built the HTML and no chapter failed to execute."""
        return self.sphinx_ok and not self.failed


def _stage(root: Path, stage: Path) -> None:
    """Copy the book's static files into a fresh staging tree."""
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in BOOK_FILES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, stage / name)
        elif src.is_file():
            shutil.copy2(src, stage / name)
    (stage / "notebooks").mkdir()
    _stage_mathjax(stage / "_mathjax" / "mathjax")


def _stage_mathjax(target: Path) -> None:
    """A local MathJax, so pages with math render offline without a CDN request.

    The files come from the ``jupyter-server-mathjax`` package (MathJax 2.7);
    ``_config.yml`` points ``mathjax_path`` at them.
    """
    import importlib.util

    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise ParameterError("jupyter-server-mathjax is not installed (make install installs it)")
    shutil.copytree(Path(spec.submodule_search_locations[0]) / "static", target)


def build(root: Path, profile: str = "cpu", only: Sequence[str] | None = None,
          out: Path | None = None, strict: bool = True, rerun: bool = False) -> BuildReport:
    """Execute every chapter with ``profile`` (or reuse a current execution) and render the book to HTML.

    All parameters of all chapters are checked before the first chapter runs.
    A chapter that fails keeps its executed notebook (with the traceback) in
    the staging tree; the others still build, and the report lists the failure.
    ``rerun`` executes every chapter even where a kept execution is current.
    """
    plan = load_profile(root, profile)
    selected = list(only) if only else chapters(root)
    for chapter in selected:
        check_parameters(root, chapter, plan.get(chapter, {}))
    out = (out or root).resolve()
    stage = out / "_build" / "src"
    _stage(root, stage)
    report = BuildReport(html_dir=out / "_build" / "html")
    for chapter in selected:
        start = time.perf_counter()
        output = stage / "notebooks" / f"{chapter}.ipynb"
        kept = out / "_build" / EXECUTED_DIR / chapter
        params = plan.get(chapter, {})
        try:
            if not rerun and _reuse_executed(kept, execution_key(root, chapter, params), output):
                report.reused.append(chapter)
            else:
                shutil.rmtree(kept, ignore_errors=True)    # a failed run leaves nothing to reuse
                execute_chapter(root, chapter, output, params)
                _keep_executed(kept, execution_key(root, chapter, params), output)
        except Exception as exc:  # keep building the rest; report at the end
            report.failed[chapter] = f"{type(exc).__name__}: {str(exc)[-2000:]}"
        report.seconds[chapter] = time.perf_counter() - start
        how = " FAILED" if chapter in report.failed else " (reused: its inputs are unchanged)" \
            if chapter in report.reused else ""
        print(f"[nrg book] {chapter}: {report.seconds[chapter]:.1f} s{how}", flush=True)
    report.sphinx_ok = _jupyter_book(stage, out, strict)
    return report


def execution_key(root: Path, chapter: str, params: Mapping[str, Any]) -> str:
    """A digest of what executing ``chapter`` with ``params`` reads: equal digests, equal pages.

    Deliberately broad (any change to nrg's code executes every chapter again):
    a page left stale is worse than a build that takes longer.
    """
    from nrg.book.chapters import ADDED_FOLDERS, reads_every_chapter
    from nrg.book.common import runs_root

    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(label.encode() + b"\0" + data + b"\0")

    add("notebook", notebook_path(root, chapter).read_bytes())
    add("params", json.dumps(dict(params), sort_keys=True, default=str).encode())
    package = Path(__file__).resolve().parent.parent   # the whole nrg package, and chapters added from outside it
    for base in (package, *ADDED_FOLDERS):
        for path in sorted(base.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                add(str(path.relative_to(base)), path.read_bytes())
    add("environment", _environment().encode())
    # A page that reads every chapter's rows (the summary) depends on all of runs/, not on its own folder.
    runs = runs_root() if reads_every_chapter(chapter) else runs_root() / chapter
    for folder in (runs, root / "results", root / "notebooks" / "params"):
        add(str(folder), _listing(folder).encode())
    return digest.hexdigest()


def _environment() -> str:
    """Installed versions, the machine and the ``NRG_*`` variables, as text."""
    variables = {k: v for k, v in os.environ.items() if k.startswith("NRG_") and k != "NRG_PAGE"}
    return _installed_and_machine() + json.dumps(variables, sort_keys=True)


@functools.lru_cache(maxsize=1)
def _installed_and_machine() -> str:
    import importlib.metadata

    from nrg.meters import hardware

    versions = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    machine = {k: v for k, v in hardware.provenance().items() if k not in VOLATILE}
    return json.dumps([versions, machine], sort_keys=True, default=str)


def _listing(folder: Path) -> str:
    """Every file under ``folder``: path, size and modification time (a sweep that adds a cell changes it)."""
    if not folder.is_dir():
        return ""
    rows = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            info = path.stat()
            rows.append(f"{path.relative_to(folder)}\t{info.st_size}\t{info.st_mtime_ns}")
    return "\n".join(rows)


def _page_data(notebook: Path) -> Path:
    from nrg.book.publish import DATA_DIR

    return notebook.parent / DATA_DIR / notebook.stem


def _reuse_executed(kept: Path, key: str, output: Path) -> bool:
    """Copy the kept execution to ``output`` if its key is ``key`` (file times kept: Sphinx skips it)."""
    key_file = kept / KEY_FILE
    if not key_file.is_file() or key_file.read_text().strip() != key or not (kept / output.name).is_file():
        return False
    shutil.copy2(kept / output.name, output)
    if (kept / "data").is_dir():
        shutil.copytree(kept / "data", _page_data(output), dirs_exist_ok=True)
    return True


def _keep_executed(kept: Path, key: str, output: Path) -> None:
    """Keep ``output`` and its data with ``key``; the key is written last, so a half copy is never reused."""
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir(parents=True)
    shutil.copy2(output, kept / output.name)
    if _page_data(output).is_dir():
        shutil.copytree(_page_data(output), kept / "data")
    (kept / KEY_FILE).write_text(key + "\n")


def _jupyter_book(stage: Path, out: Path, strict: bool) -> bool:
    """Render the staged tree into ``out/_build/html`` (strict: warnings are errors)."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe if exe.exists() else "jupyter-book"), "build", str(stage),
           "--path-output", str(out)]
    if strict:
        cmd += ["-n", "-W", "--keep-going"]
    return subprocess.run(cmd, check=False).returncode == 0
