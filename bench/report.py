"""Figures, targets and the printed table."""

import os
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Figure:
    name: str
    backend: str
    value: float
    unit: str
    target: float | None = None
    lower_is_better: bool = False
    note: str = ""

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.lower_is_better else self.value >= self.target


def print_table(figures: list[Figure]) -> None:
    table = Table(title="Patron benchmarks")
    for column in ("benchmark", "backend", "figure", "target", "met", "note"):
        table.add_column(column)
    for f in figures:
        target = "" if f.target is None else f"{'≤' if f.lower_is_better else '≥'} {f.target:,.4g} {f.unit}"
        met = {None: "", True: "yes", False: "NO"}[f.meets_target]
        table.add_row(f.name, f.backend, f"{f.value:,.4g} {f.unit}", target, met, f.note)
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=200)  # a file or a pipe keeps every row on one line
    console.print(table)
