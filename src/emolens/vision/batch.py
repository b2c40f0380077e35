"""Run jobs (image chunks, video files) over worker processes, each with its own recogniser on one
thread, with a progress bar over the files; results come back in job order, so they are the
same whatever the number of workers.

Processes, not threads: the detector's and classifier's ONNX sessions, OpenCV and the video
encoder each hold the GIL in places, and one recogniser per process on one thread uses the
cores with no contention. Workers are spawned (not forked): a fork of a process whose runtimes
already started threads can hang.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterator, Sequence

#: The recogniser of this worker process (built once by :func:`_start_worker`).
_RECOGNIZER = None


def _start_worker(make: Callable[[Any], Any], options: Any) -> None:
    global _RECOGNIZER
    _RECOGNIZER = make(options)


def _run_job(job: Callable, item: Any) -> Any:
    return job(_RECOGNIZER, item)


def worker_pool(make_recognizer: Callable[[Any], Any], options: Any, workers: int):
    """A process pool whose every process holds ``make_recognizer(options)`` (both picklable)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(make_recognizer, options))


def run_jobs(job: Callable[[Any, Any], Any], items: Sequence, make_recognizer: Callable[[Any], Any], options: Any,
             workers: int = 1, sizes: Sequence[int] | None = None, unit: str = "file", desc: str = "",
             progress: bool = True, recognizer=None, pool=None) -> Iterator[Any]:
    """``job(recognizer, item)`` for each item, yielded in item order.

    ``workers`` > 1: that many processes (or ``pool``, from :func:`worker_pool`), each with
    ``make_recognizer(options)`` (picklable, top level); 1: in this process with ``recognizer``
    (or one made here). ``sizes``: how many ``unit`` each item counts for on the progress bar."""
    from contextlib import nullcontext

    from tqdm import tqdm

    sizes = list(sizes) if sizes is not None else [1] * len(items)
    bar = tqdm(total=sum(sizes), unit=unit, desc=desc or None, disable=not progress or sum(sizes) <= 1, file=sys.stderr,
               dynamic_ncols=True)
    try:
        if workers <= 1:
            rec = recognizer if recognizer is not None else make_recognizer(options)
            for item, size in zip(items, sizes):
                result = job(rec, item)
                bar.update(size)
                yield result
            return
        with nullcontext(pool) if pool is not None else worker_pool(make_recognizer, options, workers) as running:
            futures = [running.submit(_run_job, job, item) for item in items]
            for future, size in zip(futures, sizes):
                result = future.result()
                bar.update(size)
                yield result
    finally:
        bar.close()
