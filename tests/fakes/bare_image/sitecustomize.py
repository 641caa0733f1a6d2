"""Make the packages the lent GPU machine's image lacks unimportable (put this folder on PYTHONPATH).

``sys.modules[name] = None`` is how Python itself marks a module as absent:
``import name`` raises ModuleNotFoundError and ``importlib.util.find_spec(name)``
returns None -- so transformers' own availability checks see the package as
missing too, unlike a meta-path finder that raises. ``NRG_TEST_BLOCKED``
(comma-separated) replaces the default list. Child processes (isolated sweep
cells) inherit PYTHONPATH and so the same blocking.
"""
import os
import sys

DEFAULT = ("bitsandbytes", "rouge_score", "gguf", "datasets", "papermill", "jupyter", "jupyter_book",
           "jupyter_core", "jupyter_client", "nbformat", "nbclient", "ipykernel", "IPython", "nltk",
           "sentencepiece")

for _name in filter(None, os.environ.get("NRG_TEST_BLOCKED", ",".join(DEFAULT)).split(",")):
    sys.modules[_name.strip()] = None  # type: ignore[assignment]
