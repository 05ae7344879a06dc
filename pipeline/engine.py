"""Where per-shard work runs. The result never depends on the engine or the number of workers:
every shard is a pure function of its index and the settings, and results come back in shard
order."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm import tqdm

from pipeline.config import EngineSettings


def map_shards(fn: Callable[..., Any], items: Sequence[Any], engine: EngineSettings,
               description: str, *args: Any) -> Iterator[Any]:
    """``fn(item, *args)`` for every item, in order, with a progress bar."""
    bar = tqdm(total=len(items), desc=description, unit="shard", disable=None)
    try:
        if engine.workers <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item, *args)
                bar.update()
            return
        with ProcessPoolExecutor(max_workers=min(engine.workers, len(items))) as pool:
            futures = [pool.submit(fn, item, *args) for item in items]
            for future in futures:
                yield future.result()
                bar.update()
    finally:
        bar.close()
