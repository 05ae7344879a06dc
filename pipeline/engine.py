"""Where per-shard work runs: a loop, local processes, or a Dask cluster.

The result never depends on the engine or the number of workers: every shard is a pure function
of its index and the settings, results come back in shard order, and files a shard writes are
the same bytes wherever it ran. On Dask, each task is retried if its worker dies.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

from pipeline.config import EngineSettings
from pipeline.errors import InputError

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
CONNECT_TIMEOUT = "10s"


class EngineError(InputError, RuntimeError):
    """The configured engine cannot be used (an unreachable scheduler, say)."""


def map_shards(fn: Callable[..., Any], items: Sequence[Any], engine: EngineSettings,
               description: str, *args: Any) -> Iterator[Any]:
    """``fn(item, *args)`` for every item, in order, with a progress bar."""
    bar = tqdm(total=len(items), desc=description, unit="shard", disable=None)
    try:
        if engine.kind == "dask":
            yield from _on_dask(fn, items, engine, bar, args)
        elif engine.workers <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item, *args)
                bar.update()
        else:
            # spawned, not forked: a fork of a process whose OpenMP threads (LightGBM) already ran
            # can deadlock in the child
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(engine.workers, len(items)), mp_context=spawn) as pool:
                for result in _in_order(lambda item: pool.submit(fn, item, *args), items, engine.workers):
                    yield result
                    bar.update()
    finally:
        bar.close()


def scheduler_address(engine: EngineSettings) -> str:
    """The scheduler to use: the environment variable, then params; empty means a local cluster."""
    return os.environ.get(SCHEDULER_ENV) or engine.scheduler


@contextmanager
def dask_client(engine: EngineSettings):
    """A client of the configured scheduler, or of a LocalCluster on 127.0.0.1 if none is set."""
    from dask.distributed import Client, LocalCluster

    address = scheduler_address(engine)
    if address:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as err:
            origin = f"${SCHEDULER_ENV}" if os.environ.get(SCHEDULER_ENV) else "engine.scheduler"
            raise EngineError(f"cannot reach the Dask scheduler at {address} (set by {origin}): "
                              f"{err}") from err
        with client:
            yield client
        return
    cluster = LocalCluster(n_workers=engine.workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0")
    with cluster, Client(cluster) as client:
        yield client


def _on_dask(fn: Callable[..., Any], items: Sequence[Any], engine: EngineSettings, bar: tqdm,
             args: tuple) -> Iterator[Any]:
    with dask_client(engine) as client:
        shared = [client.scatter(a, broadcast=True) for a in args]  # sent once, not per task

        def submit(item: Any):
            return client.submit(fn, item, *shared, pure=False, retries=engine.retries)

        for result in _in_order(submit, items, engine.workers):
            yield result
            bar.update()


def _in_order(submit: Callable[[Any], Any], items: Sequence[Any], workers: int) -> Iterator[Any]:
    """Results in item order, with at most two tasks per worker in flight: results waiting for
    an earlier one stay few, so memory does not grow with the number of items."""
    window = max(2 * workers, 1)
    pending = [submit(item) for item in items[:window]]
    for i in range(len(items)):
        yield pending[i].result()
        pending[i] = None  # let the result go as soon as it is handed over
        if i + window < len(items):
            pending.append(submit(items[i + window]))
