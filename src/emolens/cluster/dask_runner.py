"""Run the parts of a batch job on Dask distributed (the futures API).

:func:`connect` gives a client: of the scheduler at ``address`` (or ``DASK_SCHEDULER_ADDRESS``),
else of a local cluster of worker processes, one thread each. Every worker pins OpenCV and its
OpenMP runtimes to one thread (:class:`PinThreads`; the recogniser's ONNX Runtime sessions get
one thread too), since the processes share the cores: left at their defaults they cost 16%.

:func:`run_tasks` submits a task per chunk (:func:`~emolens.cluster.parts.run_part`) and per video
to split (:func:`~emolens.cluster.parts.plan_video`, whose segments become tasks as the plan comes
back) and yields each finished part as it completes. A worker that dies mid-task (killed, out of
memory) has its task run again on another one by the scheduler; the part it writes has the same
name, so its rows are there once.
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..errors import EmolensError
from .parts import Job, PartReport, Unit, part_name, plan_video, run_part

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:     # the cluster extra is missing: connect() says so
    WorkerPlugin = object


class PinThreads(WorkerPlugin):
    """Worker setup: OpenCV and OpenMP on one thread (the worker is one of many on the machine)."""

    name = "emolens-pin-threads"

    def setup(self, worker=None) -> None:
        import cv2

        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ["EMOLENS_THREADS"] = "1"
        cv2.setNumThreads(1)



def default_workers() -> int:
    """One worker process per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:       # not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def connect(address: str | None = None, workers: int | None = None, client=None) -> Iterator:
    """A Dask client with :class:`PinThreads` on its workers: ``client`` itself when given, else one
    of the scheduler at ``address`` (default: ``DASK_SCHEDULER_ADDRESS``), else of a local cluster
    of ``workers`` processes (default: one per core), closed afterwards."""
    import dask
    from distributed import Client, LocalCluster

    if client is not None:
        client.register_plugin(PinThreads())
        yield client
        return
    address = address or dask.config.get("scheduler-address", None)
    cluster = None
    if address:
        try:
            client = Client(address, timeout="30s")
        except (OSError, TimeoutError) as e:
            raise EmolensError(f"--address {address}: no Dask scheduler answers there ({e})") from None
    else:
        if workers is not None and workers < 1:
            raise EmolensError(f"--workers must be at least 1, not {workers}")
        from ..errors import is_installed

        scratch = tempfile.TemporaryDirectory(prefix="emolens-dask-")     # the cluster's spill space, removed after
        with dask.config.set(local_cluster_config(scratch.name)):
            cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                                   dashboard_address=":0" if is_installed("bokeh") else None,
                                   silence_logs=logging.ERROR, local_directory=scratch.name)
            client = Client(cluster)
    try:
        client.register_plugin(PinThreads())
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
            scratch.cleanup()


def local_cluster_config(scratch: str) -> dict:
    """Dask settings of the local cluster: its scratch space, and four of Dask's defaults that cost
    a recognition worker CPU time for nothing. Dask starts workers with ``MALLOC_TRIM_THRESHOLD_``
    set, which also fixes glibc's mmap threshold at 128 KiB, so every frame-sized array is mapped
    and unmapped afresh (page faults, system time); it samples every worker's stack 100 times
    a second for the dashboard's profile; every process's event loop ticks 50 times a second to
    watch for blocking, and each worker's memory is read 10 times a second. Measured on 160 photos,
    one worker: the task thread's CPU time from 7.7 s to 6.2 s without the first; on 800 photos,
    two workers: 194 -> 216 images/s with the ticks and memory reads at once a second (docs/cluster.md)."""
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return {"temporary-directory": scratch, "distributed.nanny.pre-spawn-environ": environ,
            "distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
            "distributed.worker.memory.monitor-interval": "1s"}


def dashboard(client) -> str | None:
    """The Dask dashboard's address, when it runs (bokeh installed)."""
    from ..errors import is_installed

    return client.dashboard_link if is_installed("bokeh") else None


@dataclass
class Failure:
    """A task that raised (a bug, or a worker that died on it too often): what it covered, and why."""

    units: list[str]
    error: str


@dataclass
class Planned:
    """A video split into segments: the share of the file its segments already done stand for."""

    source: str
    segments: int
    done: float


def run_tasks(client, chunks: list[list[Unit]], plans: list[Unit], job: Job,
              done: set[str]) -> Iterator[PartReport | Failure | Planned]:
    """Run ``chunks`` and the videos in ``plans`` (split into segments first; those in ``done``
    are skipped) on ``client``'s workers; yield each part's report (or failure) as it finishes,
    and each plan as it comes back."""
    from distributed import as_completed

    covers = {}

    def submit(units: list[Unit]):
        name = part_name(units, job.settings_hash)
        future = client.submit(run_part, units, job, key=f"emolens-{name[:-8]}", retries=0)
        covers[future.key] = [u.key for u in units]
        return future

    running = as_completed([submit(units) for units in chunks])
    for unit in plans:
        future = client.submit(plan_video, unit, job, key=f"emolens-plan-{part_name([unit], job.settings_hash)[5:-8]}")
        covers[future.key] = [unit.key]
        running.add(future)
    for future in running:
        try:
            result = future.result()
        except Exception as e:  # noqa: BLE001  (a task's own error, or KilledWorker: reported, the job goes on)
            yield Failure(covers.pop(future.key, []), f"{type(e).__name__}: {e}")
            continue
        finally:
            future.release()
        covers.pop(future.key, None)
        if isinstance(result, PartReport):
            yield result
        else:                                       # a plan: its segments still to do become tasks
            todo = [segment for segment in result if segment.key not in done]
            for segment in todo:
                running.add(submit([segment]))
            yield Planned(result[0].source, len(result), 1 - len(todo) / len(result))
