"""Fixtures every test gets: process-wide state of nrg is reset around each test.

``nrg.dvfs.configure`` sets a module-level target (NVML module, sysfs root,
marker path) that every later DVFS call uses; a test that points it at a fake
GPU must not leave the next test talking to that fake, nor start from one a
module-scoped fixture left behind. Resetting here, before and after each test,
replaces the copies each DVFS test file used to carry.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from nrg import dvfs
from nrg.sweep import schema

# Every column a test run writes must be declared in nrg.sweep.columns (cell
# processes inherit the variable); outside tests an undeclared column is kept
# with a warning so that a long measurement is never lost.
os.environ[schema.STRICT_ENV] = "1"


@pytest.fixture(autouse=True)
def _default_dvfs_target() -> Iterator[None]:
    dvfs.configure()
    yield
    dvfs.configure()
