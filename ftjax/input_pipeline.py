"""Class-balanced epochs, batches and prefetching: everything derived from (seed, epoch) alone,
so a resumed run sees exactly the data order of an uninterrupted one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def balanced_epoch(labels: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """Shuffled indices of one epoch: every positive (label != 0) and as many negatives, drawn
    afresh each epoch (the paper down-samples negatives to the number of positives)."""
    labels = np.asarray(labels)
    pos, neg = np.flatnonzero(labels != 0), np.flatnonzero(labels == 0)
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"training patches need both classes: {pos.size} positive, "
                         f"{neg.size} negative")
    rng = np.random.default_rng([seed, 3, epoch])
    if neg.size > pos.size:
        neg = rng.choice(neg, size=pos.size, replace=False)
    return rng.permutation(np.concatenate([pos, neg]))


def batches(indices: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Full batches only (the last partial batch is dropped, as shapes must not change)."""
    n = len(indices) // batch_size
    if n == 0:
        raise ValueError(f"an epoch has {len(indices)} balanced patches, fewer than one batch "
                         f"of {batch_size}; lower --batch_size or add data")
    return [indices[i * batch_size:(i + 1) * batch_size] for i in range(n)]


def prefetch(items: Iterable[T], fn: Callable[[T], object], size: int = 2) -> Iterator[object]:
    """``map(fn, items)`` computed ``size`` items ahead in a thread, so that loading and the
    host->device transfer overlap the device's work on the previous batch."""
    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(fn(item))
            q.put(done)
        except BaseException as e:  # handed to the consumer, raised there
            q.put(e)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (out := q.get()) is not done:
            if isinstance(out, BaseException):
                raise out
            yield out
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)
