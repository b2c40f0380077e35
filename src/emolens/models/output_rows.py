"""The output layer of a pretrained network, carried over to another class set row by row, by class name.

An emolens network's last layer has one row (weight row and bias) per class. Fine-tuning the
8-class ``ferplus`` model on a 7-class folder needs the 7 shared rows copied, not a random layer:
:func:`map_output_rows` puts each of the file's rows where the network's class of the same name
(as :func:`emolens.classes.class_key` reads it: ``Happiness`` = ``happy``) sits, in the network's
order, and leaves the rows of classes the file lacks as the network initialised them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..classes import class_key


def output_layer(model: nn.Module) -> str | None:
    """The state-dict prefix of ``model``'s class layer (``head.7.``): the last ``nn.Linear`` of its
    ``head`` (the emolens interface), else its last ``nn.Linear`` anywhere; None without one."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Sequential) and len(head) and isinstance(head[-1], nn.Linear):
        return f"head.{len(head) - 1}."
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return f"{names[-1]}." if names else None


@dataclass(frozen=True)
class OutputRows:
    """How the output layer was carried over: the network's classes whose rows came from the file
    (with the file's name where it is spelled otherwise) and those that start fresh."""

    layer: str                                   # "head.7"
    source_classes: tuple[str, ...]              # the file's classes, in its order
    copied: tuple[tuple[str, str], ...]          # (network's class, file's class)
    new: tuple[str, ...]                         # network's classes the file lacks: rows kept fresh

    def describe(self) -> str:
        names = ", ".join(own if own == theirs else f"{own} = {theirs}" for own, theirs in self.copied)
        new = f", {len(self.new)} new, initialised fresh ({', '.join(self.new)})" if self.new else ", 0 new"
        return (f"output layer {self.layer} mapped by class name: {len(self.copied)} of "
                f"{len(self.copied) + len(self.new)} classes copied from the file's {len(self.source_classes)}"
                f"{f' ({names})' if names else ''}{new}")


def map_output_rows(own: dict[str, torch.Tensor], saved: dict[str, torch.Tensor], layer: str,
                    classes: Sequence[str], source_classes: Sequence[str]
                    ) -> tuple[dict[str, torch.Tensor], OutputRows] | None:
    """The output layer's tensors (``layer`` + ``weight`` / ``bias``) with the file's rows moved to the
    network's class order, and what was done; None when the file's layer is not one row per
    ``source_classes`` of the network's width (then it is an ordinary layer of another shape)."""
    names = [layer + "weight", layer + "bias"]
    names = [k for k in names if k in own and k in saved]
    if not names or any(saved[k].shape[0] != len(source_classes) or own[k].shape[0] != len(classes)
                        or saved[k].shape[1:] != own[k].shape[1:] for k in names):
        return None
    where = {class_key(name): i for i, name in enumerate(source_classes)}
    pairs = [(i, where.get(class_key(name))) for i, name in enumerate(classes)]
    tensors = {}
    for k in names:
        rows = own[k].clone()
        for i, j in pairs:
            if j is not None:
                rows[i] = saved[k][j]
        tensors[k] = rows
    report = OutputRows(layer.rstrip("."), tuple(source_classes),
                        tuple((classes[i], source_classes[j]) for i, j in pairs if j is not None),
                        tuple(classes[i] for i, j in pairs if j is None))
    return tensors, report
