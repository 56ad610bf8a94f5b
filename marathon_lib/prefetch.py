"""Bounded look-ahead: the next few items' CPU work (decode, resample, processor) runs in one background thread
while the model computes the current one. At most `depth` results wait at any time, so memory is bounded by the
depth, never by the number of items; an item's exception is raised where its result is taken."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Prefetcher(Generic[T]):
    """`take(item)` hands out the Future of an item built ahead (None when it was not prefetched) and starts the
    next one; items must be taken in the order given. `wanted(item)` is asked at submission (main thread): an item
    whose value is already at hand is not built again."""

    def __init__(self, items: Iterable[Any], build: Callable[[Any], T], depth: int,
                 key: Callable[[Any], Hashable] = lambda item: item,
                 wanted: Callable[[Any], bool] = lambda item: True) -> None:
        self.build, self.depth, self.key, self.wanted = build, depth, key, wanted
        self.queue = deque(items) if depth > 0 else deque()
        self.futures: dict[Hashable, Future[T]] = {}
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="marathon-prefetch") if self.queue else None
        self.submitted = 0
        self._fill()

    def _fill(self) -> None:
        while self.queue and len(self.futures) < self.depth:
            item = self.queue.popleft()
            if self.wanted(item):
                self.futures[self.key(item)] = self.pool.submit(self.build, item)
                self.submitted += 1

    def take(self, item: Any) -> Future[T] | None:
        future = self.futures.pop(self.key(item), None)
        self._fill()
        return future

    def close(self) -> None:
        """Drop what was not taken (a failed or interrupted run) and stop the thread."""
        self.queue.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.futures.clear()
