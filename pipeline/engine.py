"""Where per-shard work runs: a loop, local processes or threads, or a Dask cluster.

The result never depends on the engine or the number of workers: every shard is a pure function
of its index and the settings, results come back in shard order, and files a shard writes are
the same bytes wherever it ran. On Dask, each task is retried if its worker dies. Local worker
processes die with the process that started them, even one killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.config import EngineSettings
from pipeline.errors import UsageError

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler and hear it answer as one
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
M_ARENA_MAX = -8  # from <malloc.h>
TLS_ENV = "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT and __KEY"


class EngineError(UsageError, RuntimeError):
    """The configured engine cannot be used (an unreachable scheduler, say)."""


def map_shards(fn: Callable[..., Any], items: Sequence[Any], engine: EngineSettings,
               description: str, *args: Any, borrowers: Callable[[Any], int] | None = None,
               total: int | None = None, threads: bool = False, release: bool = False,
               parent_works: bool = False) -> Iterator[Any]:
    """``fn(item, *args)`` for every item, in order, with a progress bar that counts borrowers
    (``borrowers(result)`` for each result; ``total``, when known, gives the bar its end), or
    items when ``borrowers`` is not given. With ``threads``, local workers are threads of this
    process, for work that spends its time where Python's lock is released (LightGBM, Arrow):
    no worker start-up, nothing pickled, and no copy of the results between processes. With
    ``release``, a process hands the memory an item freed back to the system before the next
    (``then_release``; threads share one process and skip it). With ``parent_works``, worker
    processes are one fewer and this process takes items too (``_beside``)."""
    unit = " borrowers" if borrowers else " shards"
    bar = tqdm(total=total if borrowers else len(items), desc=description, unit=unit, unit_scale=True,
               disable=None)
    try:
        for result in _results(fn, items, engine, args, threads, release, parent_works):
            yield result
            bar.update(borrowers(result) if borrowers else 1)
    finally:
        bar.close()


def _results(fn: Callable[..., Any], items: Sequence[Any], engine: EngineSettings,
             args: tuple, threads: bool, release: bool, parent_works: bool) -> Iterator[Any]:
    work = functools.partial(then_release, fn) if release else fn
    if engine.kind == "dask":
        yield from _on_dask(work, items, engine, args)
    elif on_one_core(engine) or len(items) <= 1:
        with arrow_threads(engine.workers):
            for item in items:
                yield work(item, *args)
    elif threads:
        with arrow_threads(engine.workers), \
                ThreadPoolExecutor(max_workers=min(engine.workers, len(items))) as pool:
            yield from _in_order(lambda item: pool.submit(fn, item, *args), items, engine.workers)
    else:
        # spawned, not forked: a fork of a process whose OpenMP threads (LightGBM) already ran
        # can deadlock in the child
        spawn = multiprocessing.get_context("spawn")
        workers = min(engine.workers, len(items))
        with ProcessPoolExecutor(max_workers=workers - 1 if parent_works else workers, mp_context=spawn,
                                 initializer=start_worker, initargs=(os.getpid(),)) as pool:
            if not parent_works:
                yield from _in_order(lambda item: pool.submit(work, item, *args), items, engine.workers)
                return
            with _beside(pool, work, args, workers) as submit:
                yield from _in_order(submit, items, engine.workers)


@contextmanager
def _beside(pool: ProcessPoolExecutor, work: Callable[..., Any], args: tuple,
            workers: int) -> Iterator[Callable[[Any], Any]]:
    """A ``submit`` for ``workers`` items at a time: one runs in this process, on a thread of
    it, whenever none already does, the others in ``pool``'s processes (``workers`` - 1 of them).
    The work of one worker process without its own interpreter: at 1M borrowers the features on
    this process and one worker took 13.6-13.8 s at a peak of 600-615 MB, on two worker processes
    13.3-13.7 s at 738-746 MB (2026-12-06)."""
    here = threading.Semaphore(1)

    def run(item: Any) -> Any:
        if not here.acquire(blocking=False):
            return pool.submit(work, item, *args).result()
        try:
            with arrow_threads(1):  # this process is one core's worker, as each in the pool
                return work(item, *args)
        finally:
            here.release()

    threads = ThreadPoolExecutor(max_workers=workers)
    try:
        yield lambda item: threads.submit(run, item)
    finally:  # after an error, the items still queued are dropped, not run first
        threads.shutdown(cancel_futures=True)


def then_release(fn: Callable[..., Any], item: Any, *args: Any) -> Any:
    """``fn(item, *args)``, then the memory it freed handed back to the system. A worker runs one
    big item after another, and the allocators (Arrow's mimalloc, glibc's malloc) keep freed pages
    for the next: scoring the raw tables of 1M borrowers, the process tree's peak was 1.20x that
    of a tenth of them without this and 1.11-1.16x with it, in the same time. Not for small
    items: it cost the features of 1M borrowers (25,000 a shard) 16% more time for 5-9% less
    memory."""
    try:
        return fn(item, *args)
    finally:
        release_freed_memory()


def release_freed_memory() -> None:
    """Return freed memory to the system: Python's cycles collected, the unused pages of Arrow's
    pool released, and glibc's heap trimmed (where the C library has ``malloc_trim``)."""
    import pyarrow

    gc.collect()
    pyarrow.default_memory_pool().release_unused()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


@functools.cache
def arrow_on_system_allocator() -> None:
    """Arrow's allocations from the C library's allocator from now on in this process, the one
    numpy's arrays use, instead of Arrow's own mimalloc: memory that reading a batch freed then
    serves the arrays built from it, where two allocators each kept their own. Building the
    features of 150,000 borrowers in batches of 5,000 on 2 threads, the process peaked at
    478-505 MB with it and 557-590 MB without, in the same time (2026-12-04)."""
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())


def one_malloc_arena() -> bool:
    """Threads started from now on in this process allocate from the C library's main heap, not
    an arena each: a batch's memory that one thread freed then serves the other's next batch,
    where each arena kept its own. For the features of 1M borrowers on 2 threads (with Arrow on
    the system allocator), the process peaked at 459-478 MB with one arena and 500-530 MB
    without, in the same time (2026-12-04). Only glibc has arenas to limit: whether it took it."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and mallopt(M_ARENA_MAX, 1) == 1


def on_one_core(engine: EngineSettings) -> bool:
    """Whether the work runs in this process on its one core, leaving none to spare."""
    return engine.kind == "local" and engine.workers <= 1


@contextmanager
def arrow_threads(cores: int) -> Iterator[None]:
    """Arrow's thread pool capped at ``cores`` while work runs in this process, then restored:
    ``engine.workers`` is the number of cores a command uses, and Arrow's pool otherwise takes
    every core (one worker in this process used 1.2 cores, reading and writing Parquet). Worker
    processes get the same cap from OMP_NUM_THREADS, which Arrow reads too."""
    import pyarrow

    before = pyarrow.cpu_count()
    pyarrow.set_cpu_count(min(cores, before))
    try:
        yield
    finally:
        pyarrow.set_cpu_count(before)


def start_worker(parent: int) -> None:
    """Runs first in each local worker process, before the work imports anything: the worker dies
    with its parent, and its libraries (Arrow, LightGBM) run one thread each. A worker is one
    core's share: on two cores, two workers of two threads each measured 8% slower (the features
    of 1M borrowers: 31.5 s against 28.9 s)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """Runs first in each local worker: a worker outliving a parent killed with SIGKILL (which
    runs no cleanup) would hold its memory for ever. Linux kills it with the parent
    (PR_SET_PDEATHSIG); elsewhere, and should that fail, a watchdog thread sees the parent gone."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


@contextmanager
def dask_client(engine: EngineSettings):
    """A client of the configured scheduler, or of a LocalCluster on 127.0.0.1 if none is set."""
    from dask.distributed import Client, LocalCluster

    address, origin = engine.scheduler, engine.scheduler_origin
    if address:
        security = _security(engine, address, origin)
        _probe(address, security, origin)
        try:
            client = Client(address, timeout=f"{CONNECT_TIMEOUT}s", security=security)
        except (OSError, TimeoutError) as err:
            raise EngineError(f"cannot reach the Dask scheduler at {address} (set by {origin}): "
                              f"{err}") from err
        with client:
            yield client
        return
    cluster = LocalCluster(n_workers=engine.workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0")
    with cluster, Client(cluster) as client:
        yield client


def _security(engine: EngineSettings, address: str, origin: str):
    """TLS settings: engine.tls if set, else Dask's own configuration (its environment
    variables); a tls:// address without certificates cannot connect, so say so now."""
    from distributed.security import Security

    tls = engine.tls
    if not tls.ca_file:
        security = Security()
        if address.startswith("tls://") and not security.tls_ca_file:
            raise EngineError(f"the Dask scheduler at {address} (set by {origin}) uses TLS: set "
                              f"engine.tls (ca_file, cert_file, key_file) or {TLS_ENV}")
        return security
    for key in ("ca_file", "cert_file", "key_file"):
        if not Path(getattr(tls, key)).is_file():
            raise EngineError(f"engine.tls.{key}: {getattr(tls, key)}: no such file")
    return Security(tls_ca_file=tls.ca_file, tls_client_cert=tls.cert_file, tls_client_key=tls.key_file,
                    require_encryption=True)


def _probe(address: str, security, origin: str) -> None:
    """Fail within CONNECT_TIMEOUT, with the address named, unless a Dask scheduler answers
    there: Dask's client waits for ever on a listener that accepts and says nothing."""
    from distributed.comm import connect

    where = f"the Dask scheduler at {address} (set by {origin})"
    host, port = _check_address(address, where)
    try:  # nothing listening, told apart from a listener that is no Dask scheduler
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as err:
        raise EngineError(f"cannot reach {where}: {err.strerror or err or type(err).__name__}") from err

    async def identity() -> dict:
        comm = await connect(address, timeout=CONNECT_TIMEOUT, **security.get_connection_args("client"))
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            await comm.close()

    try:
        answer = asyncio.run(asyncio.wait_for(identity(), CONNECT_TIMEOUT))
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        reason = str(err) or type(err).__name__
        if "ssl" in reason.lower() or "certificate" in reason.lower() or "handshake" in reason.lower():
            raise EngineError(f"cannot reach {where}: {reason}") from err
        raise EngineError(f"{where} is not a Dask scheduler: it took the connection but did not answer "
                          f"as one within {CONNECT_TIMEOUT:.0f} s ({reason}; another server on that port, "
                          "as a web server, or a scheduler that expects TLS)") from err
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        kind = answer.get("type") if isinstance(answer, dict) else type(answer).__name__
        raise EngineError(f"{where} is not a Dask scheduler (it answered as {kind})")


def _check_address(address: str, where: str) -> tuple[str, int]:
    """The host and port of a well-formed scheduler address."""
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        host, port = parse_host_port(location)
        if not 0 < port < 65536:
            raise ValueError(f"port {port} out of range")
    except (ValueError, TypeError) as err:
        raise EngineError(f"malformed address for {where}: {err} (expected tcp://host:port or "
                          "tls://host:port)") from err
    return host, port


def _on_dask(fn: Callable[..., Any], items: Sequence[Any], engine: EngineSettings,
             args: tuple) -> Iterator[Any]:
    task = functools.partial(in_directory, os.getcwd(), fn)
    with dask_client(engine) as client:
        shared = [client.scatter(a, broadcast=True) for a in args]  # sent once, not per task

        def submit(item: Any):
            return client.submit(task, item, *shared, pure=False, retries=engine.retries)

        yield from _in_order(submit, items, engine.workers)


def in_directory(directory: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` run in ``directory``, the client's working directory. The stages name their
    folders relative to the repository (data/raw, a temporary beside data/incoming): a worker
    started elsewhere had read and written them under its own directory, and a stage reported
    success while its output stayed nearly empty. Every task of a run moves to the same place,
    so tasks on a worker's other threads are not disturbed."""
    if os.getcwd() != directory:
        try:
            os.chdir(directory)
        except OSError as err:
            raise FileNotFoundError(
                f"{directory}: not found on this Dask worker ({err.strerror}); the repository must be "
                "on a filesystem every node shares, at the same path") from err
    return fn(*args)


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
