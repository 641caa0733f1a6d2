"""Shared by the sweep chapters: models as specs, repeat policy, check once, run-and-select.

A chapter may run several sweep configs into one run folder (e.g. one per
task, each with the task's own lengths).  The folder also keeps cells of
earlier parameter choices -- they are what makes a rerun cheap -- so the rows
a chapter analyses are selected by the cell ids of *its current* configs.

A chapter's configs are parsed and checked against the machine once
(:func:`check_configs`, giving :class:`Checked`); :func:`measure_checked` runs
them without checking again. :class:`SweepParams` holds the parameters the
generation-sweep chapters share; each chapter's ``Params`` adds its own.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from nrg.book import carbon, common
from nrg.book.common import as_int, as_list, as_mapping
from nrg.book.params import ChapterParams
from nrg.errors import ParameterError, check_choice, check_device
from nrg.models.spec import DTYPES, ModelSpec, parse_models
from nrg.sweep.repeats import RepeatPolicy

if TYPE_CHECKING:
    import pandas as pd

    from nrg.sweep.config import Cell, SweepConfig

DEFAULT_REPEATS = RepeatPolicy(min_n=3, max_n=5, ci_rel=0.05)   # adaptive: 3 to 5, until the CI is within 5%


def repeat_policy(repeats: Any) -> Any:
    """An int (fixed count) or a mapping {min, max, ci_rel} (adaptive); strings read strictly."""
    if isinstance(repeats, str):
        text = repeats.strip()
        repeats = as_mapping("repeats", text) if text.startswith("{") else as_int("repeats", text)
    return repeats


@dataclass(frozen=True)
class Checked:
    """A parsed sweep config and its cells, checked against this machine."""

    config: SweepConfig
    cells: tuple[Cell, ...]


def parse_configs(configs: Sequence[SweepConfig | Mapping[str, Any]]) -> tuple[SweepConfig, ...]:
    """Keys, types and ranges of every config (no machine, no file)."""
    from nrg.sweep.config import parse_config

    return tuple(parse_config(c) for c in configs)


def check_configs(configs: Sequence[SweepConfig | Mapping[str, Any]]) -> tuple[Checked, ...]:
    """Check every config as the runner will (no file written): its cells, ready to run."""
    from nrg.sweep import check as sweep_check

    return tuple(Checked(cfg, tuple(sweep_check.check(cfg))) for cfg in parse_configs(configs))


def unchecked(configs: Sequence[SweepConfig]) -> tuple[Checked, ...]:
    """Configs already checked against this machine by the caller: their cells, not checked again."""
    return tuple(Checked(cfg, tuple(cfg.cells())) for cfg in configs)


def check_variant(config: SweepConfig | Mapping[str, Any], base: Checked) -> Checked:
    """``config`` checked against this machine, where it differs from ``base``, already checked, only in axes.

    A chapter that decides what to sweep after its parameters were checked
    (the clocks a capability probe found) runs its checked base config with
    extra axes and another name: only the axes are new, so only they are
    checked (:func:`nrg.sweep.check.check_axes`), and models, lengths,
    device and meters are not checked a second time. A config that differs
    in anything else is checked whole.
    """
    from dataclasses import replace

    from nrg.sweep import check as sweep_check

    (parsed,) = parse_configs([config])
    if replace(parsed, name=base.config.name, axes=base.config.axes) != base.config:
        return check_configs([parsed])[0]
    sweep_check.check_axes(parsed)
    return Checked(parsed, tuple(parsed.cells()))


def measure_checked(checked: Sequence[Checked], run_dir: Path, progress: bool = True) -> pd.DataFrame:
    """Run every checked config into ``run_dir`` (finished cells are reused); rows of these cells only."""
    from nrg.sweep.run import run_sweep
    from nrg.sweep.runfolder import store

    if not checked:
        raise ParameterError("no sweep configs to run")
    for item in checked:
        run_sweep(item.config, run_dir, progress=progress, checked_cells=item.cells)
    return store.load(run_dir, cell_ids=[c.cell_id for item in checked for c in item.cells])


@dataclass(frozen=True)
class SweepParams(ChapterParams):
    """The parameters every generation-sweep chapter takes, parsed; its configs checked once.

    A chapter's ``Params`` subclasses this with its ``CHAPTER``, its own fields
    (parsed in :meth:`parse`) and :meth:`configs`; building one parses every
    value (papermill's strings included), then checks the configs against this
    machine, unless ``nrg book run`` checked the same values already
    (:meth:`~nrg.book.params.ChapterParams.checked_elsewhere`).
    """

    CHAPTER: ClassVar[str] = ""
    EXTRA = ("reference",)

    # given as in the parameters cell; parsed into specs with ``weights`` and ``layers``
    models: tuple[ModelSpec, ...] = cast("tuple[ModelSpec, ...]", ("smollm2-135m",))
    weights: str = "auto"
    layers: int | None = None
    dtype: str = "float32"
    device: str = "cpu"
    repeats: RepeatPolicy = DEFAULT_REPEATS
    warmup: int = 1
    idle_s: float = 2.0
    isolate: bool = True
    run_dir: Path | None = None        # None: runs/<chapter> (resolved when built)
    reference_dir: Path | None = None  # None: results/reference, when the book has one
    alpha: float = 0.05
    region: str = carbon.DEFAULT_REGION
    price_per_kwh: float | None = None
    pue: float = carbon.DEFAULT_PUE
    # the sweep configs these parameters mean, checked against this machine
    checked: tuple[Checked, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = self._put
        layers = None if self.layers is None else common.as_int("layers", self.layers)
        put("layers", layers)
        put("models", parse_models(as_list("models", self.models), self.weights, layers))
        check_choice("dtype", self.dtype, DTYPES)
        put("device", check_device("device", self.device))
        repeats = self.repeats
        put("repeats", repeats if isinstance(repeats, RepeatPolicy) else RepeatPolicy.parse(repeat_policy(repeats)))
        put("warmup", common.as_int("warmup", self.warmup, minimum=0))
        put("idle_s", common.as_number("idle_s", self.idle_s))
        put("isolate", common.as_bool("isolate", self.isolate))
        self.parse()
        put("run_dir", common.run_dir(self.CHAPTER, None if self.run_dir is None else str(self.run_dir)))
        put("reference_dir", common.reference_root(None if self.reference_dir is None else str(self.reference_dir)))
        put("alpha", common.as_fraction("alpha", self.alpha, 1e-6, 0.5))
        for name, value in carbon.check_params(self.region, self.price_per_kwh, self.pue).items():
            put(name, value)
        configs = parse_configs(self.configs())
        put("checked", unchecked(configs) if self.checked_elsewhere() else check_configs(configs))

    def _put(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def parse(self) -> None:
        """Parse and check the chapter's own fields (``self._put`` the parsed values)."""

    def configs(self) -> list[dict[str, Any]]:
        """The chapter's sweep configs (each a mapping :func:`nrg.sweep.config.parse_config` reads)."""
        raise NotImplementedError

    def base_config(self) -> dict[str, Any]:
        """The keys every config of the chapter shares."""
        return {"chapter": self.CHAPTER, "models": list(self.models), "dtypes": [self.dtype],
                "device": self.device, "repeats": self.repeats.to_dict(), "warmup": self.warmup,
                "idle_s": self.idle_s, "isolate": self.isolate}

    @property
    def reference(self) -> dict[str, Path]:
        """Committed GPU runs of this chapter by GPU folder (empty without reference data)."""
        return common.reference_runs(self.reference_dir, self.CHAPTER)

    def measure(self, progress: bool = True) -> pd.DataFrame:
        """Run (or reuse) the checked cells, not checking them again: their rows, ``model`` labelled.

        ``model`` says what differs from the published model (:mod:`nrg.book.labels`);
        the published name stays in ``model_name``.
        """
        from nrg.book.labels import with_model_labels

        assert self.run_dir is not None   # resolved when the parameters were built
        return with_model_labels(measure_checked(self.checked, self.run_dir, progress=progress))


def load_reference(reference: Mapping[str, Path]) -> dict[str, Any]:
    """Committed GPU runs by GPU name, loaded as DataFrames (``model`` labelled as in :mod:`nrg.book.labels`)."""
    from nrg.book.labels import with_model_labels
    from nrg.sweep.runfolder import store

    return {gpu: with_model_labels(store.load(path)) for gpu, path in reference.items()}
