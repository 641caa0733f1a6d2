"""The book: chapters run and built, and what its pages show beside the data.

:mod:`~nrg.book.build` (run a chapter through papermill with parameter checks; build the book),
:mod:`~nrg.book.findings` and :mod:`~nrg.book.statement` (findings as checked statements),
:mod:`~nrg.book.claims` and :mod:`~nrg.book.claim_measures` (the papers' claims beside the data),
:mod:`~nrg.book.plots` (figures), :mod:`~nrg.book.labels` (names that tell the truth) and
:mod:`~nrg.book.carbon` (energy as carbon and money).
"""
