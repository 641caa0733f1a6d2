"""The chapter ``notebooks/02_sequence_length.ipynb``: its driver (checks, measurement) and analysis."""
