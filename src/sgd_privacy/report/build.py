"""Build the report: render every section from its tables, write the page, figures and CSV tables."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib

from ..io import atomic_path
from .banner import banner_html
from .blocks import Block, FigureBlock, Note, Section, TableBlock, section_slice
from .frames import Inputs, ReportInputError
from .html import RenderedSection, page_html
from .sections import SECTIONS

# Figures carry no creation date, so a rerun on the same inputs writes the same bytes.
PNG_METADATA: dict[str, str | None] = {"Software": None}
SVG_METADATA: dict[str, str | None] = {"Date": None, "Creator": None}

TITLE = "How private is SGD? Reproduction report"
PNG_DPI = 110


def render_section(section: Section, inputs: Inputs) -> RenderedSection:
    """A section's blocks; absent when none of its tables was given, a note for each part that cannot render."""
    if not any(inputs.has(k) for k in section.kinds):
        note = (
            f"{section.title}: not in this config (no {section.stage} tables: {', '.join(section.kinds)}); "
            "enable that stage to add this section."
        )
        return RenderedSection(section.key, section.title, section.study, None, note)
    blocks: list[Block] = []
    for part in section.parts:
        try:
            made = part(inputs)
        except ReportInputError as exc:
            blocks.append(Note(f"Left out ({part.__name__}): {exc}.", "missing"))
            continue
        except DATA_ERRORS as exc:
            blocks.append(
                Note(
                    f"Left out ({part.__name__}): its tables could not be drawn ({type(exc).__name__}: {exc}).",
                    "missing",
                )
            )
            continue
        for block in made:
            blocks.append(drawable(block))
    return RenderedSection(section.key, section.title, section.study, section_slice(blocks))


# Errors a valid but unusual result (NaN bounds, one seed, empty tables) can raise while drawing: the part or
# figure is replaced by a note naming them; any other error (a full disk, a bug in the build) stops the build.
DATA_ERRORS = (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, OverflowError)


def drawable(block: Block) -> Block:
    """The block itself, or for a figure that cannot be drawn from these values a note saying so."""
    if not isinstance(block, FigureBlock):
        return block
    try:
        buffer = io.BytesIO()
        block.figure.savefig(buffer, format="png", dpi=PNG_DPI, metadata=PNG_METADATA)
        block.png = buffer.getvalue()
    except DATA_ERRORS as exc:
        return Note(
            f"Figure '{block.title}' left out: it cannot be drawn from these values ({type(exc).__name__}: {exc}).",
            "missing",
        )
    return block


@dataclass
class ReportSummary:
    """What a build wrote: section keys shown and left out, figure and table file stems."""

    shown: list[str]
    absent: list[str]
    figures: list[str]
    tables: list[str]


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def build_report(
    inputs: Inputs,
    html_path: str | os.PathLike,
    figure_dir: str | os.PathLike,
    table_dir: str | os.PathLike,
    sections: Sequence[Section] = SECTIONS,
    provenance: Mapping[str, object] | None = None,
) -> ReportSummary:
    """Render `sections` from `inputs`; write the page, every figure as PNG and SVG, every table as CSV."""
    rendered = [render_section(s, inputs) for s in sections]
    png: dict[int, bytes] = {}
    figures, tables = [], []
    with atomic_dir(figure_dir) as fig_tmp, atomic_dir(table_dir) as tab_tmp:
        for sec in rendered:
            for block in sec.blocks or []:
                stem = f"{sec.key}_{block.name}" if isinstance(block, FigureBlock | TableBlock) else ""
                if isinstance(block, FigureBlock):
                    if block.png is None:
                        buffer = io.BytesIO()
                        block.figure.savefig(buffer, format="png", dpi=PNG_DPI, metadata=PNG_METADATA)
                        block.png = buffer.getvalue()
                    png[id(block)] = block.png
                    (fig_tmp / f"{stem}.png").write_bytes(png[id(block)])
                    with matplotlib.rc_context({"svg.hashsalt": "sgd-privacy"}):  # stable element ids
                        block.figure.savefig(fig_tmp / f"{stem}.svg", format="svg", metadata=SVG_METADATA)
                    figures.append(stem)
                elif isinstance(block, TableBlock):
                    block.frame.to_csv(tab_tmp / f"{stem}.csv", index=False)
                    tables.append(stem)
                    block.name = stem
        banner = banner_html(inputs, rendered, provenance)
        page = page_html(TITLE, rendered, png, inputs.config, inputs.sources, banner)
        with atomic_path(html_path) as tmp:
            tmp.write_text(page, encoding="utf-8")
    return ReportSummary(
        [s.key for s in rendered if s.blocks is not None],
        [s.key for s in rendered if s.blocks is None],
        figures,
        tables,
    )


def build_from_files(
    files: Mapping[str, Sequence[str | os.PathLike]],
    config: Mapping,
    html_path: str | os.PathLike,
    figure_dir: str | os.PathLike,
    table_dir: str | os.PathLike,
    provenance: Mapping[str, object] | None = None,
) -> ReportSummary:
    """Read the tables by kind (kinds no section reads are rejected) and build the report."""
    known = {k for s in SECTIONS for k in s.kinds}
    unknown = sorted(set(files) - known)
    if unknown:
        raise ValueError(
            f"the report got table kinds no section reads: {', '.join(unknown)}; known kinds: {', '.join(sorted(known))}"
        )
    return build_report(Inputs.read(files, config), html_path, figure_dir, table_dir, provenance=provenance)
