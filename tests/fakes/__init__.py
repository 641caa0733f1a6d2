"""Fakes for hardware (NVML, sysfs) used by the tests; never fakes of nrg's own code."""
