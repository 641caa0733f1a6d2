"""``nrg reference``: the book's GPU measurements in one time-budgeted call that changes no setting.

`run` (budget, gate, rounds), `parts` (what is measured, in priority order), `estimate` (how long a
cell takes), `meters` (NVML's counter against integrated power), `plan` (``--plan``), `report`
(``summary.json`` / ``summary.md``, the archive), `state` (what a folder keeps between runs).
"""
