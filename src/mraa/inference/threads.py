"""The pipeline's two helper threads: a bounded read-ahead (:func:`prefetch`) and an ordered writer
(:class:`BackgroundWorker`). Errors on either thread are raised on the caller's."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
PREFETCH_FRAMES = 16  # decoded driving frames kept ready ahead of the model
PENDING_BATCHES = 4  # animated batches waiting for the encoder


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetch(items: Iterable[T], depth: int = PREFETCH_FRAMES) -> Iterator[T]:
    """Iterate ``items`` on a background thread, at most ``depth`` items ahead; its errors are raised here.

    Closing the returned generator early stops the thread (and closes ``items`` if it is a generator).
    """
    pending: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(_Failure(error))
        finally:
            getattr(iterator, "close", lambda: None)()

    thread = threading.Thread(target=run, name="mraa-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = pending.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


class BackgroundWorker:
    """Runs submitted calls in order on one thread, with a bounded queue.

    The first error of a call is raised by the next :meth:`submit` or on leaving the ``with`` block; after
    an error (or when the block exits with one) the remaining calls are skipped.
    """

    def __init__(self, depth: int = PENDING_BATCHES, name: str = "mraa-writer") -> None:
        self._pending: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (task := self._pending.get()) is not None:
            if self._error is None and not self._cancelled:
                try:
                    task()
                except BaseException as error:  # re-raised on the caller's thread
                    self._error = error

    def submit(self, task: Callable[[], Any]) -> None:
        if self._error is not None:
            raise self._error
        self._pending.put(task)

    def __enter__(self) -> BackgroundWorker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._cancelled = exc_type is not None
        self._pending.put(None)
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error
