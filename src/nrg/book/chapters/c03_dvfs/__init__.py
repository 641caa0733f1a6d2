"""The chapter ``notebooks/03_dvfs.ipynb``: its driver (checks, measurement) and analysis."""
