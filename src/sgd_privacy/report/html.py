"""One self-contained HTML page: inline CSS, figures as base64 PNG, no script and no network."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import yaml

from .blocks import Block, Note, TableBlock

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d232b;
background:#fff;line-height:1.45;font-size:15px}
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:1.7em;margin:0.2em 0}h2{font-size:1.3em;border-bottom:2px solid #d7dde5;padding-bottom:4px;margin-top:2.2em}
h3{font-size:1.05em;margin:1.4em 0 0.4em}
.study{color:#5a6b7d;font-size:0.9em;margin-top:-0.4em}
nav ol{columns:2;font-size:0.95em}
figure{margin:0.8em 0 1.4em}figure img{max-width:100%;height:auto;border:1px solid #e3e7ec}
figcaption,.caption{font-size:0.85em;color:#4a5563;margin-top:4px}
.scroll{overflow-x:auto;margin-bottom:0.3em}
table{border-collapse:collapse;font-size:0.82em;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e3e7ec;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f3f5f8;position:sticky;top:0;white-space:normal;overflow-wrap:normal;vertical-align:bottom}td.text,th.text{text-align:left}
th.study,td.study{background:#fff7e0}
p.note{margin:0.35em 0;padding:4px 10px;border-left:4px solid #9aa5b1;background:#f6f8fa;font-size:0.92em}
p.agrees{border-color:#3a9a5b;background:#eef8f1}p.differs{border-color:#d2691e;background:#fdf1e7}
p.missing{border-color:#9aa5b1;color:#4a5563}p.cannot_tell{border-color:#7a6fb0;background:#f3f1fa}
.banner{background:#f7f9fc;border:1px solid #d7dde5;padding:4px 16px 10px;margin:1em 0}
.banner h2{margin-top:0.6em}ul.provenance{font-size:0.85em;color:#4a5563}
pre{background:#f6f8fa;padding:10px;font-size:0.8em;overflow-x:auto}
"""


@dataclass
class RenderedSection:
    """A section ready for the page: its blocks, or the note saying why it is left out."""

    key: str
    title: str
    study: str
    blocks: Sequence[Block] | None
    absent_note: str = ""


def _cell(value: object) -> tuple[str, bool]:
    """Formatted text of a cell and whether it is text (left-aligned)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), True
    if isinstance(value, float):
        if math.isinf(value):
            return ("∞" if value > 0 else "-∞"), False
        return (f"{value:.4g}" if value != int(value) or abs(value) >= 1e6 else f"{int(value)}"), False
    if isinstance(value, int):
        return f"{value}", False
    return str(value), True


# A table with more columns than this is shown with its keys, then its study and verdict columns, then the rest,
# so that the comparison is visible without scrolling sideways (the CSV keeps the table's own order).
WIDE_COLUMNS = 12
# Columns that identify a row (which experiment, step, configuration or setting), kept first in a wide table.
KEY_COLUMNS = {
    "experiment", "model", "dataset", "init", "t", "T_experiment", "n_runs", "configuration", "attack", "epoch",
    "repeats", "replace_index", "target_epsilon", "max_grad_norm", "variant", "setting", "sensitivity", "mechanism",
}  # fmt: skip


def comparison_first(columns: list[str]) -> list[str]:
    """A wide table's columns in page order: its leading key columns, then every `study_*` and `verdict*`
    column, then the rest, each group in the table's order; a table of at most WIDE_COLUMNS is unchanged."""
    if len(columns) <= WIDE_COLUMNS:
        return columns
    keys: list[str] = []
    for col in columns:
        if col not in KEY_COLUMNS:
            break
        keys.append(col)
    compared = [c for c in columns if c.startswith(("study_", "verdict")) and c not in keys]
    return keys + compared + [c for c in columns if c not in keys and c not in compared]


def header_breaks(name: str) -> str:
    """A column name escaped, with a line-break opportunity after each underscore: headers wrap between the
    parts of a name ('noise_ / multiplier'), never inside a word."""
    return "_<wbr>".join(html.escape(part) for part in name.split("_"))


def table_html(frame: pd.DataFrame) -> str:
    """An HTML table; study columns shaded, numbers to 4 significant digits, NaN as a dash; a wide table shows
    its comparison columns first (`comparison_first`)."""
    frame = frame[comparison_first([str(c) for c in frame.columns])]
    head = []
    for col in frame.columns:
        cls = ["study"] if str(col).startswith("study") else []
        if frame[col].dtype == object:
            cls.append("text")
        head.append(f'<th class="{" ".join(cls)}">{header_breaks(str(col))}</th>')
    rows = []
    for rec in frame.itertuples(index=False):
        cells = []
        for col, value in zip(frame.columns, rec, strict=True):
            text, is_text = _cell(value.item() if hasattr(value, "item") else value)
            cls = (["study"] if str(col).startswith("study") else []) + (["text"] if is_text else [])
            cells.append(f'<td class="{" ".join(cls)}">{html.escape(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def block_html(block: Block, png: Mapping[int, bytes]) -> str:
    """HTML of one block; figures use their PNG bytes from `png` (keyed by the block's id)."""
    if isinstance(block, Note):
        return f'<p class="note {block.tone}">{html.escape(block.text)}</p>'
    if isinstance(block, TableBlock) and not block.in_page:
        return ""
    if isinstance(block, TableBlock):
        return (
            f"<h3>{html.escape(block.title)}</h3>{table_html(block.frame)}"
            f'<p class="caption">{html.escape(block.caption)} ({len(block.frame)} rows; CSV: tables/{html.escape(block.name)}.csv)</p>'
        )
    data = base64.b64encode(png[id(block)]).decode("ascii")
    return (
        f"<h3>{html.escape(block.title)}</h3><figure>"
        f'<img alt="{html.escape(block.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
    )


def page_html(
    title: str,
    sections: Sequence[RenderedSection],
    png: Mapping[int, bytes],
    config: Mapping,
    sources: Mapping,
    banner: str = "",
) -> str:
    """The whole page: contents, present sections, a list of those left out, config slices and inputs."""
    present = [s for s in sections if s.blocks is not None]
    absent = [s for s in sections if s.blocks is None]
    toc = "".join(f'<li><a href="#{s.key}">{html.escape(s.title)}</a></li>' for s in present)
    body = []
    for s in present:
        inner = "".join(block_html(b, png) for b in s.blocks or [])
        body.append(
            f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>'
            f'<p class="study">Study: {html.escape(s.study)}</p>{inner}</section>'
        )
    if absent:
        notes = "".join(f'<p class="note missing">{html.escape(s.absent_note)}</p>' for s in absent)
        body.append(f'<section id="absent"><h2>Not in this report</h2>{notes}</section>')
    cfg = html.escape(yaml.safe_dump(dict(config), sort_keys=True, default_flow_style=None))
    files = html.escape("\n".join(f"{k}: {', '.join(v)}" for k, v in sorted(sources.items())))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{html.escape(title)}</title><style>{CSS}</style></head>'
        f"<body><main><h1>{html.escape(title)}</h1>"
        "<p>Every number beside a shaded <b>study</b> column is the value the study printed; notes say where "
        "this run agrees, differs, or cannot tell at this size. Figures and tables are also saved as PNG/SVG and CSV beside this page.</p>"
        f"{banner}<nav><ol>{toc}</ol></nav>{''.join(body)}"
        f'<section id="config"><h2>Configuration and inputs</h2><h3>Config slices</h3><pre>{cfg}</pre>'
        f"<h3>Input tables</h3><pre>{files}</pre></section></main></body></html>\n"
    )
