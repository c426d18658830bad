"""Behaviour data: sources, cleaning with a report, vocabularies, splits, a synthetic generator.

``load(name_or_path, mapping=None)`` is the one entry point: ``movielens-100k``, a GroupLens
release folder or zip, a CSV / Parquet file with a column mapping, or a folder written by
``recloop data synth``.
"""

from __future__ import annotations

from recloop.data.dataset import COLUMNS, Dataset, as_interactions
from recloop.data.movielens import fetch_movielens_100k, load_grouplens, load_movielens_100k
from recloop.data.preprocess import (
    REASONS,
    CleaningReport,
    CleanOptions,
    Normalizer,
    clean,
    k_core,
    merge_duplicates,
    to_implicit,
)
from recloop.data.splits import Split, leave_one_out, random_split, time_split
from recloop.data.synth import GroundTruth, SynthConfig, generate, load_synthetic, write_synthetic
from recloop.data.tables import NAMES, load, load_table, read_table, summarize
from recloop.data.vocab import Vocab

__all__ = [
    "COLUMNS",
    "NAMES",
    "REASONS",
    "CleanOptions",
    "CleaningReport",
    "Dataset",
    "GroundTruth",
    "Normalizer",
    "Split",
    "SynthConfig",
    "Vocab",
    "as_interactions",
    "clean",
    "fetch_movielens_100k",
    "generate",
    "k_core",
    "leave_one_out",
    "load",
    "load_grouplens",
    "load_movielens_100k",
    "load_synthetic",
    "load_table",
    "merge_duplicates",
    "random_split",
    "read_table",
    "summarize",
    "time_split",
    "to_implicit",
    "write_synthetic",
]
