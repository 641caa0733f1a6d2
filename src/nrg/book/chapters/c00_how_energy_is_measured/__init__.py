"""The chapter ``notebooks/00_how_energy_is_measured.ipynb``: its driver (checks, measurement) and analysis."""
