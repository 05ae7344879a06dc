"""The README's marked figures come from the reports (the end-to-end test checks the real README
against a fresh clone's own run; these are known answers on hand-made reports)."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT
from tools.readme_figures import MARK, FigureError, documents, figure, main, render


@pytest.fixture
def reports(tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({
        "lightgbm": {"auc": 0.83569, "interval": [0.8277, 0.8429]},
        "split": {"[0.0, 0.05)": {"rate": 0.1024}}, "rows": 29980, "first": "2025-07-27",
        "intercept": -0.1047, "goals": {"auc_at_least_0_8": True, "ece_at_most_0_01": False},
        "sizes": [{"borrowers": 100000, "seconds": 20.3}, {"borrowers": 1000000, "seconds": 159.3}]}))
    return folder


def test_every_marked_figure_is_taken_from_its_report(reports):
    text = ("AUC <!--@ metrics.json/lightgbm/auc .3f-->0.800<!--@--> "
            "(<!--@ metrics.json/lightgbm/interval/1 .2f-->0.84<!--@-->), "
            "<!--@ metrics.json/rows ,-->1<!--@--> rows from <!--@ metrics.json/first -->?<!--@-->, "
            "<!--@ metrics.json/split/[0.0, 0.05)/rate .1%-->10.2%<!--@--> below 5%, "
            "intercept <!--@ metrics.json/intercept .2f-->0<!--@-->.")
    out, changes = render(text, reports)
    plain = MARK.sub(lambda m: m["value"], out)
    assert plain == "AUC 0.836 (0.84), 29,980 rows from 2025-07-27, 10.2% below 5%, intercept \u22120.10."
    assert len(changes) == 4 and "lightgbm/auc is 0.836, the text says 0.800" in changes[0]
    assert render(out, reports) == (out, [])  # rendering twice changes nothing


def test_check_fails_on_a_stale_figure_and_the_rewrite_fixes_it(reports, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("AUC <!--@ metrics.json/lightgbm/auc .3f-->0.842<!--@-->\n")
    page = tmp_path / "page.md"
    page.write_text("AUC <!--@ metrics.json/lightgbm/auc .3f-->0.836<!--@-->\n")
    args = ["--pages", str(page), str(readme), "--reports", str(reports)]
    assert main([*args, "--check"]) == 1  # one stale page of two fails the check
    out = capsys.readouterr().out
    assert f"{readme}: line 1: metrics.json/lightgbm/auc is 0.836, the text says 0.842" in out
    assert str(page) not in out
    assert main(args) == 0 and main([*args, "--check"]) == 0
    assert "-->0.836<!--@-->" in readme.read_text()


def test_a_goal_reads_met_or_missed_from_its_report(reports):
    text = ("AUC: **<!--@ metrics.json/goals/auc_at_least_0_8 verdict-->missed<!--@-->**, ECE: "
            "**<!--@ metrics.json/goals/ece_at_most_0_01 verdict-->met<!--@-->**")
    out, changes = render(text, reports)
    assert MARK.sub(lambda m: m["value"], out) == "AUC: **met**, ECE: **missed**"
    assert len(changes) == 2 and "auc_at_least_0_8 is met, the text says missed" in changes[0]


def test_a_benchmark_size_is_found_by_its_borrowers_and_judged_against_its_goal(reports):
    """Known answer from outside: a run of bench/simulate.py at 5k and 10k borrowers had been
    printed as "1M borrowers in 5.4 s" under a fixed **missed**; now it is no figure at all."""
    text = ("1M in <!--@ metrics.json/sizes/[borrowers=1000000]/seconds .1f-->?<!--@--> s: "
            "**<!--@ metrics.json/sizes/[borrowers=1000000]/seconds verdict<=60-->?<!--@-->**, 100k "
            "**<!--@ metrics.json/sizes/[borrowers=100000]/seconds verdict<60-->?<!--@-->**, AUC "
            "**<!--@ metrics.json/lightgbm/auc verdict>=0.83569-->?<!--@-->**")
    plain = MARK.sub(lambda m: m["value"], render(text, reports)[0])
    assert plain == "1M in 159.3 s: **missed**, 100k **met**, AUC **met**"
    with pytest.raises(FigureError, match="stops at '\\[borrowers=5000\\]'"):
        render("<!--@ metrics.json/sizes/[borrowers=5000]/seconds .1f-->?<!--@-->", reports)
    with pytest.raises(FigureError, match="'verdict<=1' needs a number"):
        render("<!--@ metrics.json/first verdict<=1-->?<!--@-->", reports)


@pytest.mark.parametrize(("marker", "message"), [
    ("<!--@ metrics.json/lightgbm/gini .3f-->x<!--@-->", "no 'lightgbm/gini' (stops at 'gini')"),
    ("<!--@ metrics.json/lightgbm/auc verdict-->x<!--@-->", "a verdict needs true or false, not 0.83569"),
    ("<!--@ metrics.json/lightgbm/interval/5 .3f-->x<!--@-->", "stops at '5'"),
    ("<!--@ missing.json/auc .3f-->x<!--@-->", "missing.json: cannot read"),
    ("<!--@ metrics.json/first .3f-->x<!--@-->", "cannot format '2025-07-27' with '.3f'"),
])
def test_a_marker_that_gives_no_figure_is_a_clear_error(reports, marker, message):
    with pytest.raises(FigureError, match=message.replace("(", r"\(").replace(")", r"\)")):
        render(marker, reports)


def test_the_readme_marks_its_figures():
    text = "".join(page.read_text() for page in documents())
    sources = {m["source"] for m in MARK.finditer(text)}
    assert {"metrics.json", "evaluation.json", "simulation.json", "split.json"} <= sources
    assert figure(-0.5, ".1f") == "\u22120.5" and figure(0.5, ".0%") == "50%"
    assert figure(-0.0004, ".2f") == "0.00"  # no sign on a figure that rounds to zero


@pytest.mark.parametrize(("page", "title", "column"), [
    ("docs/benchmarks.md", "# Benchmarks", 2),  # script | what | measured | goal
    ("README.md", "## Benchmarks", 1),  # script | headline | goal
])
def test_every_figure_the_benchmark_table_measured_comes_from_a_report(page, title, column):
    """A row's measured cell holds no hand-typed figure: every decimal or ratio is marked."""
    text = (ROOT / page).read_text()
    section = text[text.index(title):]
    section = section[:section.index("\n## ")] if "\n## " in section else section
    rows = [line for line in section.splitlines() if line.startswith("| `bench/")]
    assert len(rows) >= 8
    for row in rows:
        measured = row.strip("|").split(" | ")[column]
        typed = re.findall(r"\d+\.\d+|\d×", MARK.sub("", measured))
        assert not typed, f"{page}: {row[:40]}...: {typed} typed by hand"


def test_every_page_of_the_docs_is_kept_and_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    pages = documents()
    assert pages[0].name == "README.md" and len(pages) > 5
    for page in pages[1:]:
        assert f"(docs/{page.name})" in readme, f"README does not link docs/{page.name}"
