"""The chapter ``notebooks/summary.ipynb``: its driver (checks, measurement) and analysis."""
