"""The Lightning module: augmentation, loss with soft labels and smoothing, optimisers, schedules."""

from __future__ import annotations

from typing import Sequence

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .augment import augment
from .config import TrainConfig


class FERModule(pl.LightningModule):
    def __init__(self, model: nn.Module, cfg: TrainConfig, class_weights: np.ndarray | None = None,
                 class_prior: np.ndarray | None = None, class_names: Sequence[str] | None = None):
        super().__init__()
        # channels-last convolutions: about 20% faster on a CPU (oneDNN) and on GPUs with tensor cores
        self.model = model.to(memory_format=torch.channels_last)
        self.cfg = cfg
        weights = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.register_buffer("class_weights", weights, persistent=False)
        # logit-adjusted loss (Menon et al. 2021): the loss sees logits + tau log(prior), so the raw
        # logits the network learns are already free of the training set's class frequencies
        shift = None
        if cfg.logit_adjust and class_prior is not None:
            shift = cfg.logit_adjust * torch.log(torch.as_tensor(class_prior, dtype=torch.float32).clamp_min(1e-6))
        self.register_buffer("logit_shift", shift, persistent=False)
        self._val_preds: list[torch.Tensor] = []
        self._val_true: list[torch.Tensor] = []
        self.pretrained_load = None  # what loading the pretrained weights did (printed by train)
        if cfg.pretrained and not (cfg.run_dir / "checkpoints" / "last.ckpt").exists():
            from ..models.backbones import load_pretrained

            arch = f"{cfg.model} {cfg.model_options}" if cfg.model_options else cfg.model
            # a resumed run restores its own weights instead
            # class_names: the output layer's rows are carried over by class name
            self.pretrained_load = load_pretrained(self.model, cfg.pretrained, arch=arch, classes=class_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _normalise(self, images: torch.Tensor, centre_crop: bool = False) -> torch.Tensor:
        """uint8 (N, H, W) -> normalised (N, 1, H, W) by the spec's own :meth:`Preprocess.normalise`;
        ``centre_crop`` cuts the evaluation crop."""
        x = self.cfg.preprocess(images.shape[-1]).normalise(images, crop=centre_crop)
        return x.contiguous(memory_format=torch.channels_last)

    def _targets(self, labels: torch.Tensor, soft: torch.Tensor, n_classes: int) -> torch.Tensor:
        hard = F.one_hot(labels, n_classes).float()
        w = self.cfg.soft_label_weight
        target = hard if w == 0 else w * soft + (1 - w) * hard
        eps = self.cfg.label_smoothing
        return target * (1 - eps) + eps / n_classes

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float() if self.logit_shift is None else logits.float() + self.logit_shift
        logp = F.log_softmax(logits, dim=1)
        per_class = -target * logp
        if self.class_weights is not None:
            per_class = per_class * self.class_weights
        return per_class.sum(dim=1).mean()

    def training_step(self, batch, batch_idx):
        images, labels, soft = batch
        x = augment(self._normalise(images), self.cfg.augment).contiguous(memory_format=torch.channels_last)
        adversarial = self.cfg.adversarial_multiplier > 0
        if adversarial:
            x.requires_grad_(True)
        logits = self.model(x)
        target = self._targets(labels, soft, logits.shape[1])
        loss = self._loss(logits, target)
        acc = (logits.argmax(1) == labels).float().mean()
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train_acc", acc, on_step=False, on_epoch=True, prog_bar=True)
        if adversarial:
            adv_loss = self._adversarial_loss(x, loss, target)
            self.log("train_adv_loss", adv_loss, on_step=False, on_epoch=True)
            loss = loss + self.cfg.adversarial_multiplier * adv_loss
        return loss

    def _adversarial_loss(self, x: torch.Tensor, loss: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss on adversarial neighbours of the batch (Neural Structured Learning's adversarial
        regularisation): each input moves ``adversarial_step`` along its loss gradient, normalised
        per example (``l2``: unit L2 norm, NSL's default; ``inf``: largest entry 1; ``sign``: FGSM)."""
        (grad,) = torch.autograd.grad(loss, x, retain_graph=True)
        grad = grad.detach().float()
        flat = grad.flatten(1)
        norm = self.cfg.adversarial_norm
        if norm == "sign":
            direction = grad.sign()
        else:
            scale = flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)
            direction = grad / scale.clamp_min(1e-12).view(-1, *([1] * (grad.ndim - 1)))
        neighbour = (x.detach() + self.cfg.adversarial_step * direction).to(x.dtype)
        return self._loss(self.model(neighbour), target)

    def on_train_epoch_start(self) -> None:
        if self.cfg.freeze_epochs:
            from ..models.backbones import set_backbone_frozen

            set_backbone_frozen(self.model, self.current_epoch < self.cfg.freeze_epochs)

    def validation_step(self, batch, batch_idx):
        images, labels, soft = batch
        logits = self.model(self._normalise(images, centre_crop=True))
        loss = self._loss(logits, self._targets(labels, soft, logits.shape[1]))
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=False)
        self._val_preds.append(logits.argmax(1).cpu())
        self._val_true.append(labels.cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_preds:
            return
        from sklearn.metrics import f1_score

        pred = torch.cat(self._val_preds).numpy()
        true = torch.cat(self._val_true).numpy()
        self._val_preds.clear()
        self._val_true.clear()
        self.log("val_acc", float((pred == true).mean()), prog_bar=True, sync_dist=True)
        self.log("val_macro_f1", float(f1_score(true, pred, average="macro", zero_division=0)), sync_dist=True)

    def configure_optimizers(self):
        cfg = self.cfg
        decay, no_decay = [], []
        for p in self.model.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if cfg.backbone_lr_scale != 1.0:  # discriminative learning rates: a gentler step for the backbone
            from ..models.backbones import backbone_modules

            in_backbone = {id(p) for m in backbone_modules(self.model) for p in m.parameters()}
            groups = [{"params": [p for p in g["params"] if (id(p) in in_backbone) == bb],
                       "weight_decay": g["weight_decay"], "lr": cfg.lr * (cfg.backbone_lr_scale if bb else 1.0)}
                      for bb in (True, False) for g in groups]
            groups = [g for g in groups if g["params"]]
        if cfg.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
        elif cfg.optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=cfg.lr)
        else:
            opt = torch.optim.AdamW(groups, lr=cfg.lr)
        if cfg.schedule == "none":
            return opt
        if cfg.schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=3)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_acc"}}
        if cfg.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        total = max(int(self.trainer.estimated_stepping_batches), 10)  # one-cycle needs a few steps per phase
        max_lr = [g.get("lr", cfg.lr) for g in groups] if cfg.backbone_lr_scale != 1.0 else cfg.lr
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total, pct_start=0.2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
