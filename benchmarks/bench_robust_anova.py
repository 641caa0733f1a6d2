"""Rejection rates of the robust ANOVA under a true null: the old table against the new one.

For each 3 × 3 design (balanced and unbalanced, 3 and 5 repeats per cell on
average) and each kind of noise (equal variances; cell standard deviations 1, 2
and 4, i.e. variances differing 16-fold), seeded datasets with no effect at all
are analysed by:

* ``classical``: the F test of the ordinary ANOVA (sum-coded type III; equal to
  type II in balanced designs);
* ``old: HC3 type II``: statsmodels' ``anova_lm(fit, typ=2, robust="hc3")``,
  what ``nrg.stats.anova`` showed before (one formula fit per dataset);
* ``HC3 type III, F ref.``: HC3 Wald tests of the sum-coded terms read against
  F(q, df_resid) (statsmodels' ``typ=3, robust="hc3"``);
* ``wild bootstrap, unrestricted cov.``: that statistic with restricted
  wild-bootstrap p-values;
* ``new``: what ``nrg.stats.anova`` shows now (:mod:`nrg.stats.robust`): the
  statistic's covariance from the null model's residuals, restricted wild
  bootstrap.

A method holds its level when the rate at α = 0.05 is near 0.05 (the tests
require [0.03, 0.07] of the new method, with equal variances). A last block
gives the power of each method against a planted effect of the first factor
(level a2 shifted by one standard deviation), equal variances.

Usage: ``python benchmarks/bench_robust_anova.py [--datasets 1000] [--draws 199]``.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

from nrg.stats.robust import WaldDesign, sum_coded_matrix, wald_design, wald_f, wild_bootstrap_wald

DESIGNS = {
    "balanced, n = 3": np.full((3, 3), 3),
    "balanced, n = 5": np.full((3, 3), 5),
    "unbalanced, n = 3": np.array([[2, 3, 4], [3, 4, 3], [2, 2, 4]]),
    "unbalanced, n = 5": np.array([[3, 5, 7], [5, 6, 5], [4, 3, 7]]),
}
CELL_SD = np.array([1.0, 2.0, 4.0, 1.0, 2.0, 4.0, 4.0, 2.0, 1.0])
TERMS = ("a", "b", "a:b")
ALPHA = 0.05


def cells(sizes: np.ndarray) -> pd.DataFrame:
    rows = [(f"a{i}", f"b{j}") for i in range(3) for j in range(3) for _ in range(sizes[i, j])]
    return pd.DataFrame(rows, columns=["a", "b"])


def classical_p(design: WaldDesign, term: str, y: np.ndarray) -> np.ndarray:
    ssr = (design.full.of(y) ** 2).sum(axis=0)
    ssr0 = (design.restricted[term].of(y) ** 2).sum(axis=0)
    cols = design.terms[term]
    q = cols.stop - cols.start
    return sps.f.sf((ssr0 - ssr) / q / (ssr / design.df_resid), q, design.df_resid)


def old_p(df: pd.DataFrame, y: np.ndarray) -> dict[str, np.ndarray]:
    """statsmodels' HC3 type II table, one dataset at a time (the old method, unchanged)."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    names = {"C(a)": "a", "C(b)": "b", "C(a):C(b)": "a:b"}
    out = {t: np.empty(y.shape[1]) for t in TERMS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(y.shape[1]):
            table = anova_lm(smf.ols("y ~ C(a) * C(b)", data=df.assign(y=y[:, k])).fit(), typ=2, robust="hc3")
            for label, term in names.items():
                out[term][k] = table.loc[label, "PR(>F)"]
    return out


def rates(df: pd.DataFrame, y: np.ndarray, draws: int, seed: int, old: bool) -> dict[str, dict[str, float]]:
    design = wald_design(*sum_coded_matrix(df, ["a", "b"]))
    methods: dict[str, dict[str, np.ndarray]] = {"classical": {t: classical_p(design, t, y) for t in TERMS}}
    if old:
        methods["old: HC3 type II"] = old_p(df, y)
    methods["HC3 type III, F ref."] = {}
    for t in TERMS:
        q = design.terms[t].stop - design.terms[t].start
        methods["HC3 type III, F ref."][t] = sps.f.sf(wald_f(design, t, y, "unrestricted"), q, design.df_resid)
    for label, cov in (("wild bootstrap, unrestricted cov.", "unrestricted"), ("new", "restricted")):
        tests = wild_bootstrap_wald(design, y, draws=draws, seed=seed, covariance=cov)
        methods[label] = {t: tests[t][1] for t in TERMS}
    return {m: {t: float(np.mean(p < ALPHA)) for t, p in ps.items()} for m, ps in methods.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=1000, help="simulated datasets per design and noise")
    parser.add_argument("--draws", type=int, default=199, help="bootstrap draws per dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = []
    for i, (name, sizes) in enumerate(DESIGNS.items()):
        df = cells(sizes)
        for j, noise in enumerate(("equal variances", "variances 1:4:16", "effect on a (power)")):
            rng = np.random.default_rng([args.seed, i, j])
            y = rng.normal(size=(len(df), args.datasets))
            if noise == "variances 1:4:16":
                y *= np.repeat(CELL_SD, sizes.ravel())[:, None]
            if noise.startswith("effect"):
                y += (df["a"] == "a2").to_numpy()[:, None]
            result = rates(df, y, args.draws, args.seed * 100 + i * 10 + j, old=True)
            for method, by_term in result.items():
                rows.append({"design": name, "data": noise, "method": method, **by_term})
            print(f"  {name}, {noise}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    print(f"\nRejection rate at α = {ALPHA} ({args.datasets} datasets per row, {args.draws} bootstrap draws; "
          f"under a true null the target is 0.05, the test's band [0.03, 0.07]):\n")
    for noise, part in table.groupby("data", sort=False):
        print(f"### {noise}\n")
        print(part.drop(columns="data").to_markdown(index=False, floatfmt=".3f"), "\n")
    print(f"Total {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
