"""A run folder on disk: cell files, manifest, kept repeats, per-cell locks and the result schema.

:mod:`~nrg.sweep.runfolder.store` (one Parquet file per cell, load),
:mod:`~nrg.sweep.runfolder.files` (names, atomic writes, the run's lock),
:mod:`~nrg.sweep.runfolder.manifest` (the run manifest),
:mod:`~nrg.sweep.runfolder.checkpoints` (the kept repeats of unfinished cells),
:mod:`~nrg.sweep.runfolder.locks` (one sweep per cell at a time),
:mod:`~nrg.sweep.runfolder.columns` / :mod:`~nrg.sweep.runfolder.schema` (every result column,
declared once) and :mod:`~nrg.sweep.runfolder.schema_doc` (the schema as text).
"""
