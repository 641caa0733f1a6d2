"""Workloads: what one cell of a sweep measures, behind one protocol the runner drives.

:mod:`~nrg.workloads.protocol` (the ``Worker`` contract: prepare, repeat,
finish, close), :mod:`~nrg.workloads.registry` (workloads by the config's
``workload`` key, each module imported only when needed: the runner reaches
workloads only through it), :mod:`~nrg.workloads.cells` (the tools every
workload's cell shares: meters, axes, rows, memory) and the generation
workload (:mod:`~nrg.workloads.generation`, :mod:`~nrg.workloads.phases`).
Fine-tuning (:mod:`nrg.tickets.workload`) and serving
(:mod:`nrg.serving.workload`) live with their packages.
"""
