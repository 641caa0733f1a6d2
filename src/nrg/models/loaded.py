"""A loaded model with what the runner and the results need to know about it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from nrg.errors import ParameterError, check_positive
from nrg.models.spec import ModelSpec

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

_FIRST_SYNTHETIC_ID = 10   # skip the low ids where most vocabularies keep special tokens


@dataclass
class LoadedModel:
    """A model ready to run. Not frozen: :mod:`nrg.compress` replaces ``model`` in place.

    ``weights`` is the resolved kind (``real`` or ``random``) and ``n_params``
    the parameter count at load time, before any compression.
    """

    spec: ModelSpec
    model: Any
    tokenizer: PreTrainedTokenizerBase | None
    n_params: int
    weights: str
    is_encoder_decoder: bool
    max_context_tokens: int
    vocab_size: int
    name: str = ""                 # canonical short name, or the folder / hub id
    source: str = ""               # where weights came from (folder, hub id, shipped config)
    head: str = "causal-lm"
    from_cache: bool = False       # embedded GGUF model read from the converted cache folder
    load_time_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        """The ``torch.device`` the model's weights live on (inputs must be moved there)."""
        import torch
        if self.spec.device == "auto":  # sharded: inputs go where the first layer is
            from nrg.models.placement import input_device
            return input_device(self.model)
        return torch.device(self.spec.device)

    @property
    def can_generate(self) -> bool:
        """True for heads that generate tokens; encoder-only models can only run a forward pass."""
        return self.head in ("causal-lm", "seq2seq-lm")

    def synthetic_inputs(self, batch_size: int, input_tokens: int, seed: int = 0) -> dict[str, Any]:
        """Random token ids of exactly ``input_tokens`` per row (no tokenizer needed).

        For encoder-decoder models these are the encoder's input; ``generate``
        starts the decoder from its start token.
        """
        import torch
        check_positive("batch_size", batch_size)
        check_positive("input_tokens", input_tokens)
        if input_tokens > self.max_context_tokens:
            raise ParameterError(
                f"input_tokens={input_tokens} exceeds the context of {self.name!r} "
                f"({self.max_context_tokens} tokens)")
        generator = torch.Generator().manual_seed(seed)
        high = max(self.vocab_size, _FIRST_SYNTHETIC_ID + 1)
        ids = torch.randint(_FIRST_SYNTHETIC_ID, high, (batch_size, input_tokens), generator=generator)
        return {"input_ids": ids.to(self.device),
                "attention_mask": torch.ones_like(ids, device=self.device)}

    def pad_token_id(self) -> int:
        """A pad id for generate(): the tokenizer's, else the config's, else eos, else 0."""
        config = self.model.config
        candidates = [getattr(self.tokenizer, "pad_token_id", None), getattr(config, "pad_token_id", None),
                      getattr(config, "eos_token_id", None)]
        for value in candidates:
            if isinstance(value, list) and value:
                value = value[0]
            if isinstance(value, int):
                return value
        return 0

    def generate(self, inputs: dict[str, Any], new_tokens: int, **kwargs: Any) -> torch.Tensor:
        """Greedy generation of exactly ``new_tokens`` tokens (min = max, so runs are comparable).

        Returns only the new token ids (shape batch x new_tokens), for decoder-only
        and encoder-decoder models alike.
        """
        import torch
        check_positive("new_tokens", new_tokens)
        if not self.can_generate:
            raise ParameterError(f"model {self.name!r} loaded with head={self.head!r} cannot generate; "
                                 f"use head='causal-lm' or 'seq2seq-lm'")
        options = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False,
                   "pad_token_id": self.pad_token_id()}
        options.update(kwargs)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **options)
        if self.is_encoder_decoder:
            return cast("torch.Tensor", out[:, 1:])            # drop the decoder start token
        return cast("torch.Tensor", out[:, inputs["input_ids"].shape[1]:])
