"""models.tables: the one Markdown table renderer behind the results files."""
from __future__ import annotations

import pytest

from models.tables import markdown_table


def test_table_lays_out_the_intro_header_alignment_and_rows():
    table = markdown_table(["model", "PSNR"], [["flow", 22.1], ["masked", "-"]], align="lr", intro="Horizon 1.")
    assert table == "Horizon 1.\n\n| model | PSNR |\n|---|---:|\n| flow | 22.1 |\n| masked | - |"
    assert markdown_table(["a", "b"], []) == "| a | b |\n|---|---|"


def test_table_refuses_rows_and_alignments_that_do_not_fit_the_header():
    with pytest.raises(ValueError, match="one 'l' or 'r' per column"):
        markdown_table(["a", "b"], [], align="lc")
    with pytest.raises(ValueError, match="3 cells, the header 2"):
        markdown_table(["a", "b"], [[1, 2, 3]])
