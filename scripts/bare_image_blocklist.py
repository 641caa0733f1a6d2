"""Derive ``tests/fakes/bare_image/blocked.txt``: every module nrg's environment has that the lent GPU image lacks.

Why derived: the fake bare image must block *every* package the image lacks,
not a hand-kept few (codecarbon was once left out, and every GPU cell failed
on the real image). A module is blocked when none of the distributions that
provide it is on the image's list (``tests/fakes/bare_image/gpu-image-packages.txt``,
a copy of what the lent machine reported): the installed distributions here,
plus every requirement of ``pyproject.toml`` (core and extras) and
``requirements-embedded.txt``, installed here or not (``ray`` lives in its own
virtualenv). ``tests/test_bare_image.py`` fails when the file is out of date;
rewrite it with ``python scripts/bare_image_blocklist.py --write``.
"""
from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "tests" / "fakes" / "bare_image"
IMAGE_LIST = FOLDER / "gpu-image-packages.txt"
BLOCKED = FOLDER / "blocked.txt"
#: Requirement names whose import name is not the name with "-" as "_".
IMPORT_NAMES = {"rouge-score": "rouge_score", "nvidia-ml-py": "pynvml", "pyyaml": "yaml",
                "types-pyyaml": "yaml-stubs", "jupyter-book": "jupyter_book", "ipython": "IPython"}


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages(path: Path = IMAGE_LIST) -> set[str]:
    """The image's distributions, normalized (comments and blank lines skipped)."""
    lines = path.read_text().splitlines()
    return {normalize(line.strip()) for line in lines if line.strip() and not line.startswith("#")}


def _requirement_names() -> set[str]:
    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"]) + [r for rs in project["optional-dependencies"].values() for r in rs]
    texts += [line.split("#")[0].strip() for line in (ROOT / "requirements-embedded.txt").read_text().splitlines()]
    names = {normalize(Requirement(t).name) for t in texts if t}
    return names - {"nrg"}


def _needed_by_image(image: set[str]) -> set[str]:
    """Distributions the image's packages, *as installed here*, require (transitively, extras left out).

    Newer releases here may need what the image's older ones do not (huggingface-hub
    here imports httpx2): blocking those would break the image's own packages,
    which the image does not lack.
    """
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(image)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(normalize(requirement.name))
    return seen


def derive(image: set[str] | None = None) -> list[str]:
    """Top-level modules to block, sorted."""
    image = image_packages() if image is None else image
    keep = _needed_by_image(image)
    blocked: set[str] = set()
    for module, dists in metadata.packages_distributions().items():
        if (module.isidentifier() and not module.startswith("_") and module != "nrg"
                and module not in sys.stdlib_module_names and not any(normalize(d) in keep for d in dists)):
            blocked.add(module)
    for name in _requirement_names() - image:
        blocked.add(IMPORT_NAMES.get(name, name.replace("-", "_")))
    return sorted(m for m in blocked if m.isidentifier())


def text(modules: list[str]) -> str:
    """The file's content: a header, then one module per line."""
    return ("# Modules the lent GPU image lacks (written by scripts/bare_image_blocklist.py --write; do not edit).\n"
            + "\n".join(modules) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Print the list, or ``--write`` it; exit 1 when the file differs (for ``--check``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {BLOCKED.relative_to(ROOT)}")
    ns = parser.parse_args(argv)
    content = text(derive())
    if ns.write:
        BLOCKED.write_text(content)
    else:
        print(content, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
