"""The chapter ``notebooks/05_batch_size.ipynb``: its driver (checks, measurement) and analysis."""
