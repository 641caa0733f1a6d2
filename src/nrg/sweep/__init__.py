"""The sweep runner: a config becomes a checked grid of cells, each measured in isolation.

Modules, in the order a sweep uses them: :mod:`~nrg.sweep.config` (keys, grid,
cell ids), :mod:`~nrg.sweep.check` (everything checked before any work),
:mod:`~nrg.sweep.run` (the loop, isolation, timeouts), :mod:`~nrg.sweep.schedule.cell`
(one cell: process entry and failure rows), :mod:`~nrg.sweep.repeats`
(when to stop repeating), :mod:`~nrg.sweep.roofline` (lower bounds on time) and
:mod:`~nrg.sweep.runfolder.store` (one Parquet file per cell, load) with
:mod:`~nrg.sweep.runfolder.files`, :mod:`~nrg.sweep.runfolder.manifest` and :mod:`~nrg.sweep.runfolder.locks`
(a folder shared safely), and :mod:`~nrg.sweep.runfolder.columns` / :mod:`~nrg.sweep.runfolder.schema`
(every result column, declared once; :mod:`~nrg.sweep.runfolder.schema_doc` documents them).
What a cell measures is a workload (:mod:`nrg.workloads`), reached through its registry.
"""
