"""What a report section is made of: figures, tables and notes, and the section registry entry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
from matplotlib.figure import Figure

from .frames import Inputs
from .verdict import WORDS, Verdict

Tone = Literal["note", "agrees", "differs", "cannot_tell", "missing"]


@dataclass
class FigureBlock:
    """A figure with its file stem, title and caption (config slice and sample sizes)."""

    name: str
    title: str
    figure: Figure
    caption: str
    png: bytes | None = None  # drawn once when the section is rendered
    config_slice: tuple[str, ...] = ()  # the config behind it, stated once per section (`section_slice`)


@dataclass
class TableBlock:
    """A table with its file stem, title and caption; `study_*` columns hold the study's values."""

    name: str
    title: str
    frame: pd.DataFrame
    caption: str
    in_page: bool = True  # False: written as CSV only (a long table the page shows in another shape)
    config_slice: tuple[str, ...] = ()  # the config behind it, stated once per section (`section_slice`)


@dataclass
class Note:
    """A one-line statement; `agrees`/`differs`/`cannot_tell` compare a finding with the study's."""

    text: str
    tone: Tone = "note"


Block = FigureBlock | TableBlock | Note
Part = Callable[[Inputs], list[Block]]


@dataclass(frozen=True)
class Section:
    """A report section: shown when any of `kinds` was given, each part rendered from the tables.

    A part that lacks a table or a column is replaced by a note naming what is missing; a section
    none of whose kinds was given is replaced by a one-line note naming the stage that makes them.
    """

    key: str
    title: str
    study: str
    kinds: Sequence[str]
    stage: str
    parts: Sequence[Part] = field(default_factory=tuple)


SLICE_LEAD = "The config behind this section's figures and tables. "


def section_slice(blocks: list[Block]) -> list[Block]:
    """The blocks with the config-slice sentences of their figures and tables stated once, in a note first
    (each distinct sentence once, in order of first use), instead of in every caption."""
    sentences: list[str] = []
    for block in blocks:
        for sentence in getattr(block, "config_slice", ()):
            if sentence and sentence not in sentences:
                sentences.append(sentence)
    return [Note(SLICE_LEAD + " ".join(sentences))] + blocks if sentences else blocks


def comparison(verdict: Verdict, text: str) -> Note:
    """A note saying plainly whether a finding agrees with the study's, differs, or cannot tell at this size."""
    tone: Tone = "cannot_tell" if verdict is Verdict.CANNOT_TELL else verdict.value  # type: ignore[assignment]
    return Note(WORDS[verdict] + text, tone)
