"""The heatmap chart kind (the cross-user matrix): drawn as SVG, labels escaped, bad data as a table."""

from __future__ import annotations

from privaudit.reports.charts import render_chart


def test_heatmap_draws_one_cell_per_value_with_escaped_labels() -> None:
    svg = str(render_chart({"kind": "heatmap", "title": "m", "rows": ["<u1>", "u2"], "columns": ["<u1>", "u2"],
                            "values": [[0.5, 0.0], [None, 1.0]]}))
    assert svg.startswith("<svg") and svg.count("<rect") == 4
    assert "&lt;u1&gt;" in svg and "<u1>" not in svg and "n/a" in svg


def test_heatmap_with_a_ragged_row_falls_back_to_a_table() -> None:
    html = str(render_chart({"kind": "heatmap", "title": "m", "rows": ["a", "b"], "columns": ["a", "b"],
                             "values": [[0.5, 0.0], [1.0]]}))
    assert "<svg" not in html and "could not be drawn" in html
