"""``python -m nrg.serving.prepare``: the model folders the serving engine loads, made once.

The engine (vLLM) cannot read the embedded SmolLM2's GGUF file directly as
nrg ships it; nrg's own conversion (:func:`nrg.models.real.embedded_folder`:
dequantize, rebuild from config and state dict, save a safetensors folder and
the tokenizer) is cached, so ``make engine`` runs it once and the chapter's
first cell does not pay for it.
"""
from __future__ import annotations

import sys

#: embedded models the serving chapter serves
SERVED = ("smollm2-135m",)


def main(argv: list[str] | None = None) -> int:
    """Convert each served embedded model (cached: a second call returns at once)."""
    from nrg.models import known_models
    from nrg.models.real import embedded_folder

    names = argv if argv else list(SERVED)
    for name in names:
        folder, cached = embedded_folder(known_models()[name])
        print(f"{name}: {folder} ({'cached' if cached else 'converted'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
