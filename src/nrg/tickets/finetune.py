"""Fine-tuning with energy per phase: root-cause classification and response generation.

Two tasks on fault tickets (:mod:`nrg.tickets.generator`):

* root cause -- all-MiniLM-L6-v2 as a sequence classifier; scored by accuracy
  and macro-F1;
* response -- SmolLM2-135M-Instruct writes the resolution; scored by ROUGE-L
  and BLEU against the reference response.

Both are tuned the same way, LoRA adapters on the attention projections (plus
the new classifier head), with the base weights frozen. Why one method for
every compression setting: a frozen base is what a quantized model allows
(QLoRA-style), so with LoRA everywhere the energy differences between fp32,
16-bit, 8-bit and 4-bit come from the compression, not from a change of
training method.

Each phase runs inside one named window of an :class:`nrg.meters.EnergyMonitor`
(``"finetune"``, ``"inference"``); tokenization happens before the window, so
the window holds the model's work. :mod:`nrg.tickets.workload` runs these
phases as a workload of the sweep runner, over the ``quant`` x ``prune`` axes.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

from nrg.errors import ParameterError, check_positive
from nrg.tickets.metrics import accuracy, bleu, macro_f1, rouge_l

if TYPE_CHECKING:
    import torch
    from peft import PeftModel

    from nrg.meters import Measurement
    from nrg.meters.protocols import Monitor

SYSTEM_PROMPT = "You are a NOC engineer. Read the fault ticket and write its resolution."
LORA_TARGETS = {"classifier": ("query", "value"), "generator": ("q_proj", "v_proj")}


@dataclass(frozen=True)
class TrainSettings:
    """How long and how hard to train; CPU-sized defaults."""

    epochs: int = 1
    batch_size: int = 16
    max_len: int = 128
    learning_rate: float = 1e-3
    max_steps: int | None = None
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_len", "lora_r", "lora_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name}={value!r} is not valid; it must be an integer >= 1")
        check_positive("learning_rate", self.learning_rate)
        if self.max_steps is not None and (isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int)
                                           or self.max_steps < 1):
            raise ParameterError(f"max_steps={self.max_steps!r} is not valid; an integer >= 1 or None")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a config mapping (``seed`` left out: the sweep's ``seed`` sets it)."""
        out = asdict(self)
        out.pop("seed")
        return out


@dataclass(frozen=True)
class PhaseResult:
    """One measured phase: its window, the tokens it processed, quality metrics and what was done."""

    phase: str
    measurement: Measurement
    tokens: int
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence load reports, progress bars and per-call warnings of transformers / peft / bitsandbytes.

    Why: a notebook page (and a cell's log) should show the measurements, not
    a library's notices repeated for every cell.
    """
    from transformers.utils import logging as hf_logging

    logger = logging.getLogger("bitsandbytes")
    level = logger.level
    verbosity = hf_logging.get_verbosity()
    logger.setLevel(logging.ERROR)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


def attach_lora(model: Any, kind: str, settings: TrainSettings) -> PeftModel:
    """LoRA adapters on the attention projections; the classifier head stays trainable.

    Raises whatever peft raises for layers it cannot wrap (e.g. torch's dynamic
    int8 Linear): the caller records that combination as unsupported.
    """
    from peft import LoraConfig, get_peft_model

    task_type = "SEQ_CLS" if kind == "classifier" else "CAUSAL_LM"
    config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                        target_modules=list(LORA_TARGETS[kind]), task_type=task_type)
    with quiet():
        return get_peft_model(model, config)


def trainable_parameters(model: Any) -> int:
    """Parameters the optimiser updates (LoRA adapters and the classifier head)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_device(model: Any) -> torch.device:
    """Where the model's weights are: token ids go there (tokenizers give CPU tensors)."""
    return cast("torch.device", next(model.parameters()).device)


def _batches(n: int, settings: TrainSettings) -> list[list[int]]:
    """Index batches for all epochs (shuffled per epoch by ``seed``), cut at ``max_steps``."""
    import torch

    generator = torch.Generator().manual_seed(settings.seed)
    batches: list[list[int]] = []
    for _ in range(settings.epochs):
        order = torch.randperm(n, generator=generator).tolist()
        batches += [order[i:i + settings.batch_size] for i in range(0, n, settings.batch_size)]
    return batches[: settings.max_steps] if settings.max_steps else batches


def train(model: Any, encoded: dict[str, Any], settings: TrainSettings, monitor: Monitor) -> PhaseResult:
    """AdamW over the trainable parameters in one ``"finetune"`` window; returns its measurement."""
    import torch

    torch.manual_seed(settings.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
    batches = _batches(len(encoded["input_ids"]), settings)
    device = model_device(model)
    losses: list[float] = []
    tokens = 0
    model.train()
    with quiet(), monitor.window("finetune") as window:
        for index in batches:
            batch = {key: value[index].to(device) for key, value in encoded.items()}
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            tokens += int(batch["attention_mask"].sum())
    model.eval()
    extra = {"steps": len(batches), "train_tokens": tokens, "train_loss_first": losses[0],
             "train_loss_last": losses[-1], "trainable_params": trainable_parameters(model)}
    assert window.measurement is not None  # set when the window's block exits
    return PhaseResult("finetune", window.measurement, tokens, {}, extra)


# ------------------------------------------------------------------ root cause (classifier)


def encode_classification(tokenizer: Any, texts: Sequence[str], label_ids: Sequence[int] | None,
                          max_len: int) -> dict[str, Any]:
    """Padded, truncated token ids (and labels when given) for the classifier."""
    import torch

    encoded = dict(tokenizer(list(texts), padding=True, truncation=True, max_length=max_len,
                             return_tensors="pt"))
    if label_ids is not None:
        encoded["labels"] = torch.tensor(list(label_ids), dtype=torch.long)
    return encoded


def finetune_classifier(model: Any, tokenizer: Any, texts: Sequence[str], label_ids: Sequence[int],
                        settings: TrainSettings, monitor: Monitor) -> PhaseResult:
    """Train a (LoRA-wrapped) sequence classifier on the tickets; energy in ``"finetune"``."""
    encoded = encode_classification(tokenizer, texts, label_ids, settings.max_len)
    return train(model, encoded, settings, monitor)


def evaluate_classifier(model: Any, tokenizer: Any, texts: Sequence[str], label_ids: Sequence[int],
                        settings: TrainSettings, monitor: Monitor) -> PhaseResult:
    """Predict every ticket's root cause in one ``"inference"`` window; accuracy and macro-F1."""
    import torch

    encoded = encode_classification(tokenizer, texts, None, settings.max_len)
    device = model_device(model)
    predictions: list[int] = []
    model.eval()
    with quiet(), torch.no_grad(), monitor.window("inference") as window:
        for start in range(0, len(texts), settings.batch_size):
            batch = {k: v[start:start + settings.batch_size].to(device) for k, v in encoded.items()}
            predictions += model(**batch).logits.argmax(-1).tolist()
    metrics = {"accuracy": accuracy(predictions, list(label_ids)),
               "macro_f1": macro_f1(predictions, list(label_ids))}
    n_tokens = int(encoded["attention_mask"].sum())
    extra = {"n_eval": len(texts), "eval_tokens": n_tokens}
    assert window.measurement is not None  # set when the window's block exits
    return PhaseResult("inference", window.measurement, n_tokens, metrics, extra)


# ------------------------------------------------------------------ response (generator)


def render_prompt(tokenizer: Any, ticket_text: str) -> str:
    """The chat prompt for one ticket (the model's template when it has one)."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": ticket_text}]
    if getattr(tokenizer, "chat_template", None):
        return cast(str, tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return f"{SYSTEM_PROMPT}\n\nTicket:\n{ticket_text}\n\nResolution:\n"


def encode_generation(tokenizer: Any, texts: Sequence[str], responses: Sequence[str],
                      max_len: int) -> dict[str, Any]:
    """Prompt + response + EOS, right-padded; the loss sees only the response tokens."""
    import torch

    rows, masks, labels = [], [], []
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for text, response in zip(texts, responses, strict=True):
        prompt_ids = tokenizer(render_prompt(tokenizer, text), add_special_tokens=False).input_ids
        answer_ids = [*tokenizer(response, add_special_tokens=False).input_ids, tokenizer.eos_token_id]
        ids = (prompt_ids + answer_ids)[:max_len]
        rows.append(ids)
        labels.append(([-100] * len(prompt_ids) + answer_ids)[:max_len])
    width = max(len(r) for r in rows)
    for i, ids in enumerate(rows):
        pad = width - len(ids)
        masks.append([1] * len(ids) + [0] * pad)
        rows[i] = ids + [pad_id] * pad
        labels[i] = labels[i] + [-100] * pad
    return {"input_ids": torch.tensor(rows), "attention_mask": torch.tensor(masks),
            "labels": torch.tensor(labels)}


def finetune_generator(model: Any, tokenizer: Any, texts: Sequence[str], responses: Sequence[str],
                       settings: TrainSettings, monitor: Monitor) -> PhaseResult:
    """Train LoRA adapters of a causal LM to write the responses; energy in ``"finetune"``."""
    encoded = encode_generation(tokenizer, texts, responses, settings.max_len)
    return train(model, encoded, settings, monitor)


def generate_responses(model: Any, tokenizer: Any, texts: Sequence[str], max_new_tokens: int,
                       batch_size: int) -> tuple[list[str], int]:
    """Greedy responses (left padding for batches) and the number of tokens generated."""
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = model_device(model)
    outputs: list[str] = []
    generated = 0
    for start in range(0, len(texts), batch_size):
        prompts = [render_prompt(tokenizer, t) for t in texts[start:start + batch_size]]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[:, batch["input_ids"].shape[1]:]
        generated += int((new != tokenizer.pad_token_id).sum())
        outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
    return [o.strip() for o in outputs], generated


def evaluate_generator(model: Any, tokenizer: Any, texts: Sequence[str], responses: Sequence[str],
                       max_new_tokens: int, batch_size: int, monitor: Monitor) -> PhaseResult:
    """Generate a response per ticket in one ``"inference"`` window; ROUGE-L and BLEU."""
    model.eval()
    with quiet(), monitor.window("inference") as window:
        predictions, generated = generate_responses(model, tokenizer, texts, max_new_tokens, batch_size)
    metrics = {"rouge_l": rouge_l(predictions, list(responses)), "bleu": bleu(predictions, list(responses))}
    extra = {"n_eval": len(texts), "generated_tokens": generated,
             "example_prediction": predictions[0] if predictions else ""}
    assert window.measurement is not None  # set when the window's block exits
    return PhaseResult("inference", window.measurement, generated, metrics, extra)
