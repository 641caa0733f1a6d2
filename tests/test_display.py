"""Tables and figures as the pages show them: units, three significant figures, data links."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from nrg.book import display, plots, publish


def test_headers_carry_units() -> None:
    assert display.header("energy_per_token_j") == "Energy per token (J/token)"
    assert display.header("time_s") == "Time (s)"
    assert display.header("gco2e") == "CO₂e (g)"
    assert display.header("cost_usd") == "Cost (USD)"
    assert display.header("idle_net_w") == "Idle net (W)"       # by the unit suffix
    assert display.header("model") == "Model"
    assert display.header("status") == "Status"                 # no unit, no brackets
    assert display.header("energy_j mean") == "Energy mean (J)"
    assert display.header("time_s ±95%") == "Time ±95% (s)"
    assert display.header("energy_j_mean") == "Energy mean (J)"
    assert display.header("ci_low_j") == "CI low (J)"
    assert display.header("first token") == "First token"


@pytest.mark.parametrize(("value", "text"), [
    (0.0, "0"), (1.0, "1"), (0.012345, "0.0123"), (12.345, "12.3"), (999.5, "1,000"),
    (12345.6, "12,300"), (-1234.0, "−1,230"), (1.234e-5, "1.23×10⁻⁵"), (2.5e9, "2.50×10⁹"),
])
def test_three_significant_figures(value: float, text: str) -> None:
    assert display.sig3(value) == text


def test_table_has_units_three_figures_and_no_row_numbers() -> None:
    df = pd.DataFrame({"model": ["a", "b"], "energy_j": [1.23456, 12345.6], "input_tokens": [8, 16],
                       "time_s": [float("nan"), 3e-6]})
    html = display.table(df).to_html()
    assert "Energy (J)" in html and "Input length (tokens)" in html
    assert ">1.23<" in html and ">12,300<" in html and ">3.00×10⁻⁶<" in html
    assert "1.23456" not in html
    assert ">0<" not in html and "row_heading" not in html   # no index column
    assert ">16<" in html                                    # integers stay whole


def test_a_pivot_table_keeps_its_rows_as_columns() -> None:
    long = pd.DataFrame({"model": ["a", "a", "b", "b"], "measure": ["energy_j", "time_s"] * 2,
                         "mean": [1.0, 2.0, 3.0, 4.0]})
    wide = long.pivot_table(index="model", columns="measure", values="mean")
    flat = publish.tidy(wide)
    assert list(flat.columns) == ["model", "energy_j", "time_s"]
    html = display.table(wide).to_html()
    assert "Model" in html and "Time (s)" in html
    assert "Energy (J)" in display.table(long).to_html()      # measure names read as labels


def test_data_link_writes_csv_and_parquet_beside_the_page(tmp_path: Path) -> None:
    page = tmp_path / "notebooks" / "02_x.ipynb"
    df = pd.DataFrame({"batch_size": [1, 2], "energy_j": [1.5, 2.5], "mixed": ["a", 3]})
    line = publish.data_link(df, "energy vs batch", "figure", notebook=page)
    assert line == ("Data behind this figure: [CSV](data/02_x/02_x-figure01-energy-vs-batch.csv) · "
                    "[Parquet](data/02_x/02_x-figure01-energy-vs-batch.parquet)")
    folder = page.parent / "data" / "02_x"
    assert pd.read_csv(folder / "02_x-figure01-energy-vs-batch.csv")["energy_j"].tolist() == [1.5, 2.5]
    back = pd.read_parquet(folder / "02_x-figure01-energy-vs-batch.parquet")
    assert back["mixed"].tolist() == ["a", "3"]              # mixed objects kept as text
    second = publish.data_link(df, None, "table", notebook=page)
    assert second is not None and "02_x-table01.csv" in second
    third = publish.data_link(df, "energy vs batch", "figure", notebook=page)
    assert third is not None and "figure02-energy-vs-batch" in third


def test_no_page_no_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(publish.PAGE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert publish.data_link(pd.DataFrame({"a": [1]}), "x") is None
    assert not any(tmp_path.iterdir())


def test_page_env_sets_and_restores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(publish.PAGE_ENV, raising=False)
    with publish.page_env(tmp_path / "p.ipynb"):
        assert publish.page() == (tmp_path / "p.ipynb").resolve()
    assert publish.page() is None


def test_figures_keep_the_table_they_were_drawn_from() -> None:
    df = pd.DataFrame({"model": ["a", "a", "b", "b"], "energy_j": [1.0, 1.2, 2.0, 2.2]})
    data, name = plots.figure_data(plots.bar_by_group(df, measure="energy_j", x="model", hue=None))
    assert name == "energy_j-by-model"
    assert data["mean"].round(6).tolist() == [1.1, 2.1] and data["n"].tolist() == [2, 2]
    from matplotlib.figure import Figure

    fig = Figure()
    left, right = fig.subplots(1, 2)
    plots.bar_by_group(df, measure="energy_j", x="model", hue=None, ax=left)
    left.set_title("left panel")
    plots.bar_by_group(df.assign(energy_j=df["energy_j"] * 2), measure="energy_j", x="model", hue=None, ax=right)
    data, _ = plots.figure_data(fig)
    assert data["panel"].tolist() == ["left panel"] * 2 + ["Mean with 95% CI"] * 2
    assert plots.figure_data(Figure()) is None


def test_findings_block_is_an_admonition() -> None:
    text = display.findings_block(["Energy falls.", "Latency rises."]).data
    assert text.startswith(":::{admonition} What this chapter found")
    assert "- Energy falls.\n- Latency rises." in text and text.rstrip().endswith(":::")


CELLS = [
    "%matplotlib inline\nimport pandas as pd\nimport nrg.book.chapters\nfrom nrg.book import plots\n"
    "df = pd.DataFrame({'model': ['a', 'a', 'b', 'b'], 'energy_j': [1.0, 1.2, 2.0, 2.1]})\ndf",
    "from IPython.display import display\n"
    "display(plots.bar_by_group(df, measure='energy_j', x='model', hue=None))\nprint('after')",
    "df.iloc[:0]",
]


@pytest.mark.slow
@pytest.mark.process
def test_a_kernel_shows_tables_and_figures_with_their_data_links(tmp_path: Path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    page = tmp_path / "notebooks" / "07_demo.ipynb"
    with publish.page_env(page):
        NotebookClient(nb, kernel_name="python3", timeout=180).execute()
    first, second, third = (c.outputs for c in nb.cells)
    assert [list(o["data"]) for o in first] == [["text/html", "text/plain"], ["text/markdown", "text/plain"]]
    assert "Energy (J)" in first[0]["data"]["text/html"] and "1.2<" in first[0]["data"]["text/html"]
    assert first[1]["data"]["text/markdown"].startswith("Data behind this table: [CSV](data/07_demo/07_demo-table01.csv)")
    assert "image/png" in second[0]["data"]
    assert "figure01-energy_j-by-model.csv" in second[1]["data"]["text/markdown"]
    assert second[2]["text"] == "after\n"                         # the link sits right under its figure
    assert third[0]["data"]["text/markdown"] == "*Empty table: no rows.*"
    files = sorted(p.name for p in (page.parent / "data" / "07_demo").iterdir())
    assert files == ["07_demo-figure01-energy_j-by-model.csv", "07_demo-figure01-energy_j-by-model.parquet",
                     "07_demo-table01.csv", "07_demo-table01.parquet"]
    json.dumps(nb)  # the outputs are plain JSON (no widget state)


def test_long_tables_fold_behind_a_one_line_summary() -> None:
    html = display.fold("<table></table>", "ANOVA of x — click to show")
    assert html.startswith('<details class="nrg-fold"><summary>ANOVA of x — click to show</summary>')
    df = pd.DataFrame({"model": [f"m{i}" for i in range(20)], "energy_j": range(20)})
    assert display.rows_summary(df) == "Table: 20 rows × 2 columns (Model, Energy (J)) — click to show"
    folded = display.folded(df, "twenty rows").data
    assert folded.startswith('<details class="nrg-fold"><summary>twenty rows</summary>') and "Energy (J)" in folded


def test_verdict_columns_come_right_after_the_first() -> None:
    df = pd.DataFrame({"claim": ["c"], "paper": ["p"], "rule": ["r"], "this run": ["1 %"],
                       "verdict (this run)": ["agrees"]})
    assert list(display._verdict_first(df).columns) == ["claim", "verdict (this run)", "paper", "rule", "this run"]
    assert list(display._verdict_first(df[["claim", "paper"]]).columns) == ["claim", "paper"]


def test_an_empty_figure_is_recognised() -> None:
    from matplotlib.figure import Figure

    empty = Figure()
    empty.subplots(1, 3)
    assert display.is_empty_figure(empty)
    drawn = Figure()
    drawn.subplots().plot([1, 2], [3, 4])
    assert not display.is_empty_figure(drawn)
    assert display.is_empty_figure(drawn, pd.DataFrame({"x": []}))   # drawn from no rows


def test_no_download_of_an_empty_table(tmp_path: Path) -> None:
    page = tmp_path / "notebooks" / "02_x.ipynb"
    assert publish.data_link(pd.DataFrame({"energy_j": []}), "nothing", notebook=page) is None
    assert not (page.parent / "data").exists()


def test_raw_rows_are_one_parquet_beside_the_page(tmp_path: Path) -> None:
    page = tmp_path / "notebooks" / "05_x.ipynb"
    rows = pd.DataFrame({"cell_id": ["a", "b"], "energy_j": [1.0, 2.0], "error": [None, "boom"]})
    line = publish.rows_link(rows, notebook=page)
    assert "[Parquet](data/05_x/05_x-rows.parquet)" in line and "2 rows × 3 columns" in line
    assert pd.read_parquet(page.parent / "data" / "05_x" / "05_x-rows.parquet")["energy_j"].tolist() == [1.0, 2.0]
    assert "No rows" in publish.rows_link(rows.iloc[:0], notebook=page)


def test_carbon_tables_state_the_assumptions_once_and_show_energy_co2e_cost() -> None:
    from nrg.book import carbon

    rows = pd.DataFrame({"model": ["a", "a", "b"], "task": ["qa"] * 3, "phase": ["generate"] * 3,
                         "status": ["ok"] * 3, "energy_j": [10.0, 12.0, 30.0], "tokens": [8, 8, 8],
                         "energy_method": ["estimated"] * 3})
    page_table = carbon.for_page(carbon.inference_table(rows, by=["model"], region="FRA", pue=1.2))
    visible = page_table.visible()
    assert list(visible.columns) == ["model", "per", "energy_j", "gco2e", "cost_usd", "windows", "energy_method"]
    text = page_table.assumptions()
    assert "`FRA`" in text and "PUE 1.2" in text and "USD/kWh" in text and "gCO₂e/kWh" in text
    assert set(carbon.PROVENANCE_COLUMNS) <= set(page_table.frame.columns)     # the data link keeps them all
