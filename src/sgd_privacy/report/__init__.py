"""The final report: every stage's tables as figures and tables beside the studies' values, in one HTML page."""

from .build import build_from_files, build_report, render_section
from .frames import Inputs, MissingColumnsError, MissingTableError
from .sections import SECTIONS, section_kinds

__all__ = [
    "SECTIONS",
    "Inputs",
    "MissingColumnsError",
    "MissingTableError",
    "build_from_files",
    "build_report",
    "render_section",
    "section_kinds",
]
