"""Make every package the lent GPU machine's image lacks unimportable (put this folder on PYTHONPATH).

The list is ``blocked.txt`` beside this file: every module of nrg's environment
and of its declared requirements whose distribution is not on the image's list
(``gpu-image-packages.txt``, copied from the lent machine), derived by
``scripts/bare_image_blocklist.py`` -- codecarbon, bitsandbytes, gguf,
rouge_score, datasets, papermill, Jupyter, IPython, ray, the embedded model and
data packages, and their dependencies. ``tests/test_bare_image.py`` fails when
it is out of date.

``sys.modules[name] = None`` is how Python itself marks a module as absent:
``import name`` raises ModuleNotFoundError and ``importlib.util.find_spec(name)``
returns None -- so transformers' own availability checks see the package as
missing too, unlike a meta-path finder that raises. ``NRG_TEST_BLOCKED``
(comma-separated) replaces the list. Child processes (isolated sweep cells)
inherit PYTHONPATH and so the same blocking.

With ``NRG_TEST_FAKE_H200=<state file>``, ``pynvml`` is replaced by the fake
H200 of tests/fakes/h200.py in every process; the state file collects every
state-changing NVML call any of them made.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _default() -> list:
    with open(os.path.join(_HERE, "blocked.txt"), encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


_given = os.environ.get("NRG_TEST_BLOCKED")
for _name in (_given.split(",") if _given is not None else _default()):
    if _name.strip():
        sys.modules[_name.strip()] = None  # type: ignore[assignment]

_state = os.environ.get("NRG_TEST_FAKE_H200")
if _state:
    sys.path.append(os.path.dirname(os.path.dirname(_HERE)))
    from fakes.h200 import FakeH200  # imports the real pynvml first, for its constants and errors

    sys.modules["pynvml"] = FakeH200(_state)  # type: ignore[assignment]
