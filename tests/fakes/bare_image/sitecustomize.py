"""Make the packages the lent GPU machine's image lacks unimportable (put this folder on PYTHONPATH).

``sys.modules[name] = None`` is how Python itself marks a module as absent:
``import name`` raises ModuleNotFoundError and ``importlib.util.find_spec(name)``
returns None -- so transformers' own availability checks see the package as
missing too, unlike a meta-path finder that raises. ``NRG_TEST_BLOCKED``
(comma-separated) replaces the default list. Child processes (isolated sweep
cells) inherit PYTHONPATH and so the same blocking.

With ``NRG_TEST_FAKE_H200=<state file>``, ``pynvml`` is replaced by the fake
H200 of tests/fakes/h200.py in every process; the state file collects every
state-changing NVML call any of them made.
"""
import os
import sys

DEFAULT = ("bitsandbytes", "rouge_score", "gguf", "datasets", "papermill", "jupyter", "jupyter_book",
           "jupyter_core", "jupyter_client", "nbformat", "nbclient", "ipykernel", "IPython", "nltk",
           "sentencepiece")

for _name in filter(None, os.environ.get("NRG_TEST_BLOCKED", ",".join(DEFAULT)).split(",")):
    sys.modules[_name.strip()] = None  # type: ignore[assignment]

_state = os.environ.get("NRG_TEST_FAKE_H200")
if _state:
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from fakes.h200 import FakeH200  # imports the real pynvml first, for its constants and errors

    sys.modules["pynvml"] = FakeH200(_state)  # type: ignore[assignment]
