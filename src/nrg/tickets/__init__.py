"""The fault-ticket study (chapter 4): data, metrics and the fine-tuning workload of the sweep runner.

:mod:`~nrg.tickets.vocabulary` (root causes, alarms, KPIs), :mod:`~nrg.tickets.generator`
(seeded synthetic tickets), :mod:`~nrg.tickets.loader` (your own CSV/JSONL tickets),
:mod:`~nrg.tickets.metrics` (accuracy, macro-F1, ROUGE-L, BLEU),
:mod:`~nrg.tickets.finetune` (LoRA fine-tuning and inference, one energy window per phase),
:mod:`~nrg.tickets.options` (the ``finetune:`` section of a sweep config; chapter 4's defaults),
:mod:`~nrg.tickets.data` (a cell's tickets and their split),
:mod:`~nrg.tickets.float_tuned` (the float-tuned model shared by sibling cells through the run folder),
:mod:`~nrg.tickets.workload` (``workload: finetune`` of :mod:`nrg.sweep`: one cell of the
quantization x pruning grid).
"""
