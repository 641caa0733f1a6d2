"""The chapter ``notebooks/06_serving.ipynb``: its driver (checks, measurement) and analysis."""
