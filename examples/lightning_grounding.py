"""A tiny phrase-grounding box regressor trained with Lightning and scored by evalstream.

Synthetic 32x32 images each hold one coloured rectangle; the phrase is its
colour ("red box"), and a small conv net predicts the rectangle's box. Every
validation epoch the predicted boxes are scored by the server (ScoreBoxes) as
the run's checkpoint at ``trainer.global_step``, so box precision, recall, F1
and IoU become checkpoint metrics and each image a specimen. Training and
validation losses stream through `EvalstreamLogger`; `EvalstreamEarlyStopping`
would stop a diverged run.

Runs on a CPU in about half a minute, with no downloads::

    evalstream-server --data-dir /tmp/es &
    python examples/lightning_grounding.py --target localhost:50051

It prints the run id, the verdict and the checkpoint metrics of each evaluation.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from typing import Any

import lightning.pytorch as pl
import torch
from evalstream import Box, Client, ImageBoxes
from evalstream.integrations.lightning import EvalstreamEarlyStopping, EvalstreamLogger
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SIZE = 32
COLOURS = {"red": (1.0, 0.1, 0.1), "green": (0.1, 1.0, 0.1), "blue": (0.1, 0.1, 1.0)}


def make_images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` images (count, 3, SIZE, SIZE), their boxes (x1, y1, x2, y2) in [0, 1] and colours."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, SIZE, SIZE, generator=g) * 0.2
    boxes = torch.empty(count, 4)
    colours = torch.randint(0, len(COLOURS), (count,), generator=g)
    rgb = torch.tensor(list(COLOURS.values()))
    for i in range(count):
        w, h = torch.randint(8, 20, (2,), generator=g).tolist()
        x1 = int(torch.randint(0, SIZE - w + 1, (1,), generator=g))
        y1 = int(torch.randint(0, SIZE - h + 1, (1,), generator=g))
        images[i, :, y1 : y1 + h, x1 : x1 + w] = rgb[colours[i]].view(3, 1, 1)
        boxes[i] = torch.tensor([x1, y1, x1 + w, y1 + h]) / SIZE
    return images, boxes, colours


class BoxRegressor(pl.LightningModule):
    """A small conv net: image -> one box (x1, y1, x2, y2) as fractions of the image."""

    def __init__(self, lr: float = 3e-3, width: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(width * (SIZE // 4) ** 2, 4),
            nn.Sigmoid(),
        )
        self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, boxes, _ = batch
        loss = nn.functional.smooth_l1_loss(self(x), boxes, beta=0.05)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, boxes, colours = batch
        pred = self(x)
        self.log("val_loss", nn.functional.smooth_l1_loss(pred, boxes, beta=0.05))
        self._val.append((pred.detach(), boxes, colours))

    def on_validation_epoch_end(self) -> None:
        """Scores the epoch's boxes as the checkpoint at this step: its metrics and specimens."""
        outputs, self._val = self._val, []
        if self.trainer.sanity_checking or not isinstance(self.logger, EvalstreamLogger):
            return
        names = list(COLOURS)
        images = []
        for b, (pred, boxes, colours) in enumerate(outputs):
            for i in range(len(pred)):
                phrase = f"{names[int(colours[i])]} box"
                p = (pred[i] * SIZE).tolist()
                t = (boxes[i] * SIZE).tolist()
                images.append(
                    ImageBoxes(
                        f"val-{b * 1000 + i}",
                        predictions=(Box(*p, label=phrase, confidence=1.0),),
                        ground_truth=(Box(*t, label=phrase),),
                        width=SIZE,
                        height=SIZE,
                    )
                )
        self.logger.score_boxes(self.global_step, images)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=os.environ.get("EVALSTREAM_TARGET", "localhost:50051"))
    parser.add_argument("--project", default="examples")
    parser.add_argument("--name", default=None, help="run name (default: a fresh one)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-images", type=int, default=512)
    parser.add_argument("--checkpoint-dir", default=None, help="default: a temporary directory")
    args = parser.parse_args(argv)

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    pl.seed_everything(0, verbose=False)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    train = TensorDataset(*make_images(args.train_images, seed=1))
    val = TensorDataset(*make_images(96, seed=2))
    checkpoint_dir = args.checkpoint_dir or tempfile.mkdtemp(prefix="lightning-grounding-")

    model = BoxRegressor()
    client = Client(args.target)
    logger = EvalstreamLogger(
        client,
        project=args.project,
        name=args.name,
        model="tiny-box-regressor",
        task="phrase_grounding",
        # The module's save_hyperparameters() are added to the run when the Trainer logs
        # them (the same values given here change nothing); the batch and dataset sizes
        # are not the module's, so they are given here.
        hyperparameters={**model.hparams, "batch_size": 32, "dataset_size": args.train_images},
    )
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        logger=logger,
        callbacks=[
            EvalstreamEarlyStopping(stop_on=("diverged",), early_stopping=False),
            ModelCheckpoint(dirpath=checkpoint_dir, save_top_k=-1),
        ],
        accelerator="cpu",
        devices=1,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    trainer.fit(
        model,
        DataLoader(train, batch_size=32, shuffle=True),
        DataLoader(val, batch_size=48),
    )

    run = logger.experiment
    verdict = run.verdict()
    print(f"run {run.id} ({args.project}/{logger.name}): {run.refresh().status}")
    print(f"verdict: {verdict.state}: {verdict.summary}")
    best = verdict.early_stopping
    if best.best_step is not None:
        print(f"best checkpoint: step {best.best_step} {best.best_checkpoint_path}".rstrip())
    shown = ("bbox_f1@0.5", "bbox_mean_iou@0.5", "bbox_f1@0.75")
    for evaluation in run.evaluation_steps(split="validation"):
        metrics = ", ".join(
            f"{k}={evaluation.metrics[k]:.3f}" for k in shown if k in evaluation.metrics
        )
        print(f"checkpoint step {evaluation.step}: {metrics}")
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
