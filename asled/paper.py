"""The paper's printed values, for the comparison columns of our tables."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

PAPER_FILE = Path(__file__).with_name("paper_tables.yaml")


@functools.lru_cache(maxsize=None)
def paper_table(name: str) -> dict:
    return yaml.safe_load(PAPER_FILE.read_text())[name]
