"""Experiments as data: a YAML file lists runs (model x balancing x data, ensembles, weight
averages), ``emolens experiment FILE`` trains them and writes one markdown table plus each run's
own report. :mod:`.schema` reads the file and expands the grid, :mod:`.runs` runs the rows,
:mod:`.table` writes the results."""

from .runs import run_experiment
from .schema import Experiment, RunResult, load_experiment

__all__ = ["Experiment", "RunResult", "load_experiment", "run_experiment"]
