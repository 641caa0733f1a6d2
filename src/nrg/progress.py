"""Progress bars as text in notebooks, so an executed chapter renders offline.

Inside a Jupyter kernel ``tqdm.auto`` picks ipywidgets bars. An executed
notebook then stores widget state instead of the bar's text, and the rendered
page loads require.js and the widget manager from a CDN: a reader offline
sees console errors and an empty bar. nrg's own bars use ``tqdm.std``; the
bars of transformers (loading weights, converting GGUF) go through
``tqdm.auto``, so :func:`use_text_bars` points that module at ``tqdm.std``.
"""
from __future__ import annotations

import sys


def use_text_bars() -> None:
    """Make ``tqdm.auto`` (and modules that already took its ``tqdm``) draw text bars.

    Idempotent. Called when a chapter driver is imported, i.e. in the notebooks;
    a terminal gets text bars from ``tqdm.auto`` anyway.
    """
    import tqdm.auto
    import tqdm.std

    tqdm.auto.tqdm = tqdm.std.tqdm
    tqdm.auto.trange = tqdm.std.trange
    for name in ("tqdm.autonotebook", "transformers.modeling_gguf_pytorch_utils"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "tqdm"):
            setattr(module, "tqdm", tqdm.std.tqdm)  # a module attribute unknown to the type checker
