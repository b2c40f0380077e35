"""``emolens batch``: a corpus of images and videos -> a Parquet dataset, on a Dask cluster.

``sources`` (inputs: files, folders, globs, fsspec URLs), ``schema`` (settings, the rows' columns),
``parts`` (the engine-neutral core: a chunk of inputs -> one part file, written atomically),
``output`` (the output folder: manifest, what is done, resuming), ``dask_runner`` (the Dask
client or local cluster, tasks, progress) and ``job`` (:func:`batch`, the Python call). Nothing
heavy is imported here: Dask and pyarrow load when a job runs (``emolens[cluster]``).
"""

from .job import BatchSummary, batch

__all__ = ["BatchSummary", "batch"]
