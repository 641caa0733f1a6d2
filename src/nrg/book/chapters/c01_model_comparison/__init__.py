"""The chapter ``notebooks/01_model_comparison.ipynb``: its driver (checks, measurement) and analysis."""
