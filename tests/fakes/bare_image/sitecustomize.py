"""Make every package the lent GPU machine's image lacks unimportable (put this folder on PYTHONPATH).

The list is ``blocked.txt`` beside this file: every module of nrg's environment
and of its declared requirements whose distribution is not on the image's list
(``gpu-image-packages.txt``, copied from the lent machine), derived by
``scripts/bare_image_blocklist.py`` -- codecarbon, bitsandbytes, gguf,
rouge_score, datasets, papermill, Jupyter, IPython, ray, the embedded model and
data packages, and their dependencies. ``tests/test_bare_image.py`` fails when
it is out of date.

Blocked as if absent: the path finder of ``sys.meta_path`` is replaced by one
that finds nothing for a blocked name or its submodules, so ``import name``
raises ModuleNotFoundError, ``importlib.util.find_spec(name)`` returns None
(transformers' availability checks see the package as missing) and
``name in sys.modules`` stays False (scipy imports ``sphinx.ext`` when
``"sphinx" in sys.modules``: the ``sys.modules[name] = None`` trick broke every
cell that way). Only the distributions' metadata stays readable.
``NRG_TEST_BLOCKED`` (comma-separated) replaces the list. Child processes
(isolated sweep cells) inherit PYTHONPATH and so the same blocking.

With ``NRG_TEST_FAKE_H200=<state file>``, ``pynvml`` is replaced by the fake
H200 of tests/fakes/h200.py in every process; the state file collects every
state-changing NVML call any of them made.
"""
import importlib.machinery
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _default() -> list:
    with open(os.path.join(_HERE, "blocked.txt"), encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


_given = os.environ.get("NRG_TEST_BLOCKED")
_BLOCKED = frozenset(n.strip() for n in (_given.split(",") if _given is not None else _default()) if n.strip())


class _BlockingPathFinder(importlib.machinery.PathFinder):
    """The standard path finder, blind to the blocked top-level names."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname.partition(".")[0] in _BLOCKED:
            return None
        return super().find_spec(fullname, path, target)


sys.meta_path[:] = [_BlockingPathFinder if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
for _name in [m for m in sys.modules if m.partition(".")[0] in _BLOCKED]:
    del sys.modules[_name]   # nothing blocked may have been imported by site before this ran

_state = os.environ.get("NRG_TEST_FAKE_H200")
if _state:
    sys.path.append(os.path.dirname(os.path.dirname(_HERE)))
    from fakes.h200 import FakeH200  # imports the real pynvml first, for its constants and errors

    sys.modules["pynvml"] = FakeH200(_state)  # type: ignore[assignment]
