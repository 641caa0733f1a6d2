"""The chapter ``notebooks/summary.ipynb``: its driver (checks, measurement) and analysis."""

#: The page is built from every chapter's stored rows: its kept execution is stale when any chapter's rows change.
READS_EVERY_CHAPTER = True
