"""Drop duplicated <script> entries from every page.

With Jupyter Book 1.0.4, sphinx-thebe and sphinx-togglebutton register their
inline scripts twice; the second ``const THEBE_JS_URL`` is a JavaScript error
in every browser console. Keeping the first of identical entries fixes that.
"""
from __future__ import annotations

from typing import Any


def _dedupe(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[str] = set()
    unique = []
    for script in scripts:
        key = repr((getattr(script, "filename", None) or "",
                    sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
