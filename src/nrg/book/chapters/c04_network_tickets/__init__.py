"""The chapter ``notebooks/04_network_tickets.ipynb``: its driver (checks, measurement) and analysis."""
