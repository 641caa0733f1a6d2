"""The fault-ticket study (chapter 4): data, metrics and the fine-tuning workload.

:mod:`~nrg.tickets.vocabulary` (root causes, alarms, KPIs), :mod:`~nrg.tickets.generator`
(seeded synthetic tickets), :mod:`~nrg.tickets.loader` (your own CSV/JSONL tickets),
:mod:`~nrg.tickets.metrics` (accuracy, macro-F1, ROUGE-L, BLEU),
:mod:`~nrg.tickets.finetune` (LoRA fine-tuning and inference with energy per phase),
:mod:`~nrg.tickets.study` and :mod:`~nrg.tickets.cell` (the grid of quantization x pruning).
"""
