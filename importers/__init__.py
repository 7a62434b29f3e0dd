"""Importers: one module per source format, all on one pipeline (:mod:`importers.pipeline`).

``read -> map -> validate -> upsert -> report``. A format module provides a :class:`Reader`
that yields :class:`~importers.pipeline.Candidate` records already mapped onto the model;
validation, geocoding, the all-or-nothing rule, upsert and the report are shared.
"""
from __future__ import annotations

from .pipeline import (Candidate, ImportFailed, ImportOptions, ImportReport, Problem, Reader,
                       Where, detect_format, register, run_import)

__all__ = ["Candidate", "ImportFailed", "ImportOptions", "ImportReport", "Problem", "Reader",
           "Where", "detect_format", "register", "run_import"]
