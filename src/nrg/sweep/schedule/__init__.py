"""How a sweep's cells are run: order, processes, executors and stopping.

:mod:`~nrg.sweep.schedule.blocks` (randomized-block order of repeats),
:mod:`~nrg.sweep.schedule.interleave` (workers kept loaded between blocks),
:mod:`~nrg.sweep.schedule.worker` (a worker in a child process),
:mod:`~nrg.sweep.schedule.cell` (one cell in a one-shot process; failure rows),
:mod:`~nrg.sweep.schedule.executors` (cells as Ray tasks),
:mod:`~nrg.sweep.schedule.node` (what a sweep measures once about the machine),
:mod:`~nrg.sweep.schedule.signals` (how a sweep or a cell is stopped),
:mod:`~nrg.sweep.schedule.context` (what every row of a cell carries) and
:mod:`~nrg.sweep.schedule.devices` (a cell's GPUs).
"""
