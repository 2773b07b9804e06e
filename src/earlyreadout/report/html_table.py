"""HTML tables of the report: cells of mean ± std over seeds, the best value of each column highlighted."""

from __future__ import annotations

import html
from collections.abc import Sequence

from earlyreadout.metrics import mean_std


def cell(values: Sequence[float | None], scale: float = 100.0, digits: int = 1) -> tuple[str, float | None]:
    """(mean ± std of `values` times `scale`, the mean that ranks it); a dash when none is given."""
    present = [v for v in values if v is not None]
    if not present:
        return "–", None
    spread = mean_std(present)
    text = f"{spread['mean'] * scale:.{digits}f}" + (f" ± {spread['std'] * scale:.{digits}f}" if len(present) > 1 else "")
    return text, spread["mean"]


Cell = tuple[str, float | None]  # (text, the value that ranks it; None for labels and missing values)


def best_cells(rows: Sequence[Sequence[Cell]], better: Sequence[str | None], across_rows: bool = False) -> set:
    """(i, j) of the best value of each column whose `better` is "max" or "min" (of each row, across_rows);
    a line whose values are all equal has no best."""
    lines = ([[(i, j) for j in range(len(row))] for i, row in enumerate(rows)] if across_rows
             else [[(i, j) for i in range(len(rows))] for j in range(len(better))])
    chosen = set()
    for k, line in enumerate(lines):
        rule = better[k] if not across_rows else "max"
        valued = [(rows[i][j][1], (i, j)) for i, j in line if rows[i][j][1] is not None]
        if rule is None or len({v for v, _ in valued}) < 2:  # nothing to choose between
            continue
        top = (max if rule == "max" else min)(v for v, _ in valued)
        chosen |= {at for v, at in valued if v == top}
    return chosen


def html_table(header: Sequence[str], rows: Sequence[Sequence[Cell]], better: Sequence[str | None],
               across_rows: bool = False) -> str:
    """An HTML table with the best value per column (or per row) highlighted."""
    best = best_cells(rows, better, across_rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=best" if (i, j) in best else ""}>{html.escape(text)}</td>'
                         for j, (text, _) in enumerate(row)) + "</tr>"
        for i, row in enumerate(rows))
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
