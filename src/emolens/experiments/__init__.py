"""Experiments as data: a YAML file lists runs (model x balancing x data, ensembles), ``emolens
experiment FILE`` trains them and writes one markdown table plus each run's own report."""

from .runner import Experiment, RunResult, load_experiment, run_experiment

__all__ = ["Experiment", "RunResult", "load_experiment", "run_experiment"]
