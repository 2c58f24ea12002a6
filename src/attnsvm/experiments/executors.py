"""Executors that run sweep cells: in-process (default), a local process pool, or Ray.

An executor maps a cell function over cells and yields ``(index, result)`` as each finishes.
Cell functions are module-level callables ``fn(config, cell) -> pandas.DataFrame``, so they
pickle by name for the process pool and Ray.  Every cell runs with one torch thread
(:func:`run_cell`), so its numbers do not depend on the executor, the machine's core count or
the order cells finish in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .._validation import check_choice, check_positive
from ..exceptions import require

__all__ = ["BACKENDS", "Executor", "BatchedExecutor", "ProcessExecutor", "RayExecutor",
           "make_executor", "run_cell"]

#: Names accepted by ``attnsvm reproduce --backend``.
BACKENDS = ("batched", "process", "ray")

CellFn = Callable[[Any, Any], Any]


def run_cell(fn: CellFn, config: Any, cell: Any) -> Any:
    """Run ``fn(config, cell)`` with one torch/BLAS thread (restored afterwards)."""
    import sys

    torch = sys.modules.get("torch")
    old = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        return fn(config, cell)
    finally:
        if torch is not None and old is not None:
            torch.set_num_threads(old)


def _init_worker() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


class Executor:
    """Base class: :meth:`run` yields ``(index, result)`` in completion order."""

    name = "base"

    def run(self, fn: CellFn, config: Any, cells: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (no-op by default)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BatchedExecutor(Executor):
    """Run cells one after another in this process; each cell batches its seeds in torch."""

    name = "batched"

    def run(self, fn: CellFn, config: Any, cells: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for k, cell in enumerate(cells):
            yield k, run_cell(fn, config, cell)


class ProcessExecutor(Executor):
    """A local pool of ``workers`` processes (spawned, one thread each).

    Parameters
    ----------
    workers : int, optional
        Default: the number of CPUs.
    """

    name = "process"

    def __init__(self, workers: int | None = None):
        self.workers = (os.cpu_count() or 1) if workers is None else int(
            check_positive("workers", workers, integer=True))
        self._pool: Any = None

    def _get_pool(self) -> Any:
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_init_worker)
        return self._pool

    def run(self, fn: CellFn, config: Any, cells: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        pool = self._get_pool()
        futures = {pool.submit(run_cell, fn, config, c): k for k, c in enumerate(cells)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in sorted(done, key=futures.__getitem__):
                    yield futures[f], f.result()
        finally:
            for f in pending:
                f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Run cells as Ray tasks on a local cluster or the one at ``address``.

    Parameters
    ----------
    address : str, optional
        ``ray://host:port`` or ``host:port`` of a running cluster; None starts a local one
        (``workers`` CPUs, loopback only) that :meth:`close` shuts down.
    workers : int, optional
        CPUs of the local cluster (default: all).
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        self.ray: Any = require("ray", "ray")
        self.address = address
        self.workers = workers
        self._started = False

    def _ensure(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        env = {"env_vars": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                            "MKL_NUM_THREADS": "1"}}
        if self.address:
            ray.init(address=self.address, runtime_env=env, log_to_driver=False)
        else:
            ray.init(num_cpus=self.workers or os.cpu_count(), include_dashboard=False,
                     runtime_env=env, log_to_driver=False, _node_ip_address="127.0.0.1")
            self._started = True

    def run(self, fn: CellFn, config: Any, cells: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        self._ensure()
        ray = self.ray
        task = ray.remote(num_cpus=1, max_retries=2)(run_cell)
        refs = {task.remote(fn, config, c): k for k, c in enumerate(cells)}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for r in done:
                    yield refs[r], ray.get(r)
        finally:
            for r in pending:
                ray.cancel(r, force=True)

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
            self._started = False


def make_executor(backend: str = "batched", workers: int | None = None,
                  address: str | None = None) -> Executor:
    """An executor by name: ``"batched"``, ``"process"`` or ``"ray"``."""
    check_choice("backend", backend, BACKENDS)
    if backend == "batched":
        return BatchedExecutor()
    if backend == "process":
        return ProcessExecutor(workers)
    return RayExecutor(address, workers)
