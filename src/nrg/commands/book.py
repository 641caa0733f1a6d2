"""``nrg book``: build the book, or run one chapter with checked parameters."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _parse_value(name: str, text: str) -> object:
    """A ``-p name value`` value: YAML (``false``, ``[1, 2]``, ``{a: 1}``), read strictly.

    A YAML error, a key given twice (``{min: 2, min: 3}``) or an oversized value names the parameter.
    """
    from nrg.sweep import yaml_input

    return yaml_input.load(text, f"-p {name} {text[:200]!r}")


def _build(ns: argparse.Namespace) -> int:
    from nrg.book import build as book
    from nrg.book.paths import find_root

    root = find_root()
    report = book.build(root, profile=ns.profile, only=ns.only or None,
                        out=Path(ns.out) if ns.out else None, strict=not ns.no_strict, rerun=ns.rerun)
    for chapter, error in report.failed.items():
        print(f"[nrg book] chapter {chapter} failed; its executed notebook is under "
              f"{report.html_dir.parent / 'src' / 'notebooks'}:\n  {error}")
    if not report.sphinx_ok:
        print("[nrg book] jupyter-book reported errors or warnings (strict build)")
    print(f"[nrg book] HTML: {report.html_dir / 'index.html'}")
    return 0 if report.ok else 1


def _chapter(root: Path, chapter: str | None) -> str:
    """The chapter asked for; none given lists the chapters (as a wrong name does)."""
    from nrg.book import build as book
    from nrg.errors import ParameterError

    if chapter is None:
        raise ParameterError("give a chapter; chapters are: " + ", ".join(book.chapters(root)))
    book.notebook_path(root, chapter)   # an unknown name lists the chapters
    return chapter


def _chapters_epilog() -> str | None:
    """``chapters: ...`` for the help of the verbs that take one (None outside a book)."""
    from nrg.errors import ParameterError

    try:
        from nrg.book.build import chapters
        from nrg.book.paths import find_root

        return "chapters: " + ", ".join(chapters(find_root()))
    except (ParameterError, OSError):
        return None


def _run(ns: argparse.Namespace) -> int:
    from nrg.book import build as book
    from nrg.book.paths import find_root
    from nrg.errors import ParameterError

    root = find_root()
    ns.chapter = _chapter(root, ns.chapter)
    if ns.output is None:
        raise ParameterError("give the executed notebook to write: nrg book run CHAPTER OUTPUT.ipynb")
    params: dict[str, Any] = {}
    if ns.profile:
        params.update(book.load_profile(root, ns.profile).get(ns.chapter, {}))
    params.update({name: _parse_value(name, value) for name, value in ns.parameter or []})
    book.execute_chapter(root, ns.chapter, Path(ns.output), params, progress=True)
    print(f"[nrg book] executed {ns.chapter} -> {ns.output}")
    return 0


def _params(ns: argparse.Namespace) -> int:
    from nrg.book import build as book
    from nrg.book.paths import find_root

    root = find_root()
    for name, default in book.declared_parameters(book.notebook_path(root, _chapter(root, ns.chapter))).items():
        print(f"{name} = {default}")
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``nrg book build`` and ``nrg book run`` on the CLI's subparsers."""
    parser = sub.add_parser("book", help="build the book or run one chapter headless")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    b = verbs.add_parser("build", help="execute every chapter with a profile and build HTML")
    b.add_argument("--profile", default="cpu", help="notebooks/params/<profile>.yaml (default: cpu)")
    b.add_argument("--only", nargs="*", metavar="CHAPTER", help="execute only these chapters")
    b.add_argument("--out", help="folder that receives _build/ (default: the book root)")
    b.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")
    b.add_argument("--rerun", action="store_true",
                   help="execute every chapter, even one whose inputs are unchanged since its last execution")
    b.set_defaults(func=_build)

    listed = _chapters_epilog()
    r = verbs.add_parser("run", help="execute one chapter through papermill, parameters checked", epilog=listed)
    r.add_argument("chapter", nargs="?", help="the chapter (listed below)")
    r.add_argument("output", nargs="?", help="the executed notebook to write")
    r.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="a parameter, its value in YAML (as papermill -p)")
    r.add_argument("--profile", help="start from this profile's parameters for the chapter")
    r.set_defaults(func=_run)

    p = verbs.add_parser("params", help="list a chapter's parameters and defaults", epilog=listed)
    p.add_argument("chapter", nargs="?", help="the chapter (listed below)")
    p.set_defaults(func=_params)
