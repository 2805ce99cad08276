"""The report's inputs: the stages' tables by kind, read and concatenated, with column checks."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ..io import read_json, read_table


class ReportInputError(ValueError):
    """A table a part of the report needs is absent or lacks columns."""


class MissingTableError(ReportInputError):
    """No file of a table kind was given."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(f"no '{kind}' table was given")


class MissingColumnsError(ReportInputError):
    """A table lacks columns a part of the report needs."""

    def __init__(self, kind: str, missing: Sequence[str], present: Iterable[str]) -> None:
        self.kind, self.missing = kind, list(missing)
        super().__init__(
            f"table '{kind}' lacks column(s) {', '.join(self.missing)} (it has: {', '.join(map(str, present))})"
        )


class EmptyTableError(ReportInputError):
    """A table a part of the report needs has no rows."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(
            f"table '{kind}' has no rows (the stage wrote an empty table: nothing to show, e.g. nothing was "
            "attacked or tested, or every run diverged)"
        )


def require(frame: pd.DataFrame, columns: Sequence[str], kind: str) -> pd.DataFrame:
    """Return `frame` if it has every one of `columns`; otherwise raise MissingColumnsError naming them."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MissingColumnsError(kind, missing, frame.columns)
    return frame


def read_sidecars(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One row per dataset JSON sidecar with its scalar top-level fields."""
    rows = []
    for path in paths:
        meta = read_json(path)
        rows.append({k: v for k, v in meta.items() if not isinstance(v, dict | list)})
    return pd.DataFrame(rows)


def read_kind(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate the Parquet tables (or JSON sidecars) of one kind."""
    names = [os.fspath(p) for p in paths]
    if all(str(p).endswith(".json") for p in names):
        return read_sidecars(names)
    frames = [read_table(p) for p in names]
    frames = [f for f in frames if len(f.columns)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@dataclass
class Inputs:
    """The tables the report was given, by kind, and the config slices they came from."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @classmethod
    def read(cls, files: Mapping[str, Sequence[str | os.PathLike]], config: Mapping | None = None) -> Inputs:
        """Read every kind that has at least one file; kinds without files are absent."""
        paths = {k: [os.fspath(p) for p in v] for k, v in files.items() if len(v)}
        return cls({k: read_kind(v) for k, v in paths.items()}, paths, dict(config or {}))

    def has(self, kind: str) -> bool:
        """Whether files of this kind were given."""
        return kind in self.tables

    def get(self, kind: str, columns: Sequence[str] = (), allow_empty: bool = False) -> pd.DataFrame:
        """The table of `kind`, checked to have `columns` and (unless `allow_empty`) at least one row."""
        if kind not in self.tables:
            raise MissingTableError(kind)
        if not allow_empty and self.tables[kind].empty:
            raise EmptyTableError(kind)
        return require(self.tables[kind], columns, kind)

    def experiments(self) -> dict[str, dict]:
        """Experiment settings from the config slice (empty when not given)."""
        return dict(self.config.get("experiments") or {})
