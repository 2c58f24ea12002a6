"""Resumable sweeps: a grid of configurations times seeds, one Parquet file per finished cell.

A :class:`Sweep` owns a folder.  Each :class:`Cell` (grid parameters plus a tuple of seeds) has
a stable key; its result, a :class:`pandas.DataFrame`, is written to ``cell-<key>.parquet``
atomically (temporary file + rename) the moment the cell finishes.  Running the sweep again
skips the cells whose file exists, so a sweep killed at any moment (SIGINT, SIGKILL) resumes
where it stopped and never loses or duplicates a finished cell; the assembled table is the same
as that of an uninterrupted run because it is concatenated in grid order, whatever the order
cells finished in.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pandas as pd

from .._io import atomic_write_bytes, atomic_write_text
from ..exceptions import InvalidInputError
from ..progress import Progress
from .config import config_key, jsonable
from .executors import BatchedExecutor, Executor

__all__ = ["Cell", "Sweep", "Progress"]


@dataclass(frozen=True)
class Cell:
    """One unit of work: grid parameters and the seeds it runs.

    Attributes
    ----------
    params : dict
        JSON-able grid parameters (e.g. ``{"n": 5, "T": 5, "d": 10}``).
    seeds : tuple of int
    """

    params: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        """Stable 16-hex-digit key of the cell."""
        return config_key({"params": self.params, "seeds": list(self.seeds)}, 16)

    def __hash__(self) -> int:
        return hash(self.key)


def _to_parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


class Sweep:
    """A grid of cells run by a cell function, with results kept in ``directory``.

    Parameters
    ----------
    name : str
        Label (progress bar, manifest).
    config : object
        Passed to ``fn`` unchanged (a :class:`~.config.FigureConfig`).
    cells : sequence of Cell
        Distinct cells, in the order the assembled table follows.
    fn : callable ``fn(config, cell) -> pandas.DataFrame``
        A module-level function (it is pickled by name for process and Ray executors); it must
        be deterministic in ``(config, cell)``.
    directory : path
        Folder of the cell files; created on demand.
    """

    def __init__(self, name: str, config: Any, cells: Sequence[Cell],
                 fn: Callable[[Any, Cell], pd.DataFrame], directory: str | Path):
        self.name = name
        self.config = config
        self.cells = list(cells)
        keys = [c.key for c in self.cells]
        if len(set(keys)) != len(keys):
            raise InvalidInputError(f"The sweep '{name}' has duplicate cells.")
        self.fn = fn
        self.directory = Path(directory)
        self.cached = 0

    def path(self, cell: Cell) -> Path:
        """File of a cell's result."""
        return self.directory / f"cell-{cell.key}.parquet"

    def pending(self) -> list[Cell]:
        """Cells without a result file."""
        return [c for c in self.cells if not self.path(c).exists()]

    def _write_manifest(self) -> None:
        man = self.directory / "sweep.json"
        if man.exists():
            return
        cfg = self.config.to_dict() if hasattr(self.config, "to_dict") else repr(self.config)
        atomic_write_text(man, json.dumps(jsonable({
            "name": self.name, "config": cfg,
            "cells": [{"key": c.key, "params": c.params, "seeds": list(c.seeds)}
                      for c in self.cells]}), indent=1))

    def _cleanup_temporaries(self) -> None:
        # Temporary files of writes that a kill interrupted: never a finished cell.
        for p in self.directory.glob(".cell-*.tmp"):
            try:
                p.unlink()
            except OSError:  # pragma: no cover - another process removed it
                pass

    def run(self, executor: Executor | None = None, progress: bool | None = None,
            stream: IO[str] | None = None) -> pd.DataFrame:
        """Run the pending cells and return the whole table (see :meth:`load`).

        Parameters
        ----------
        executor : Executor, optional
            Default :class:`~.executors.BatchedExecutor`.
        progress : bool, optional
            ``False`` silences the progress lines (default: on; redrawn in place on a
            terminal, one line every few seconds otherwise).
        stream : file, optional
            Where the progress goes (default stderr).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_manifest()
        self._cleanup_temporaries()
        todo = self.pending()
        self.cached = len(self.cells) - len(todo)
        ex = executor if executor is not None else BatchedExecutor()
        bar = Progress(len(todo), self.name, stream, progress is not False and bool(todo),
                       unit="cells")
        try:
            if todo:
                for k, df in ex.run(self.fn, self.config, todo):
                    if not isinstance(df, pd.DataFrame):
                        raise InvalidInputError(
                            f"The cell function of sweep '{self.name}' must return a DataFrame. "
                            f"Got {type(df).__name__} instead.")
                    atomic_write_bytes(self.path(todo[k]), _to_parquet_bytes(df))
                    bar.advance()
        finally:
            bar.close()
        return self.load()

    def load(self) -> pd.DataFrame:
        """Concatenate the finished cells in grid order (missing cells are skipped)."""
        frames = [pd.read_parquet(self.path(c)) for c in self.cells if self.path(c).exists()]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)
