"""A Trainer run that overfits, stopped by evalstream's verdict, and the checkpoint to keep.

A wide two-layer network memorises 32 noisy examples (a quarter of the labels
are flipped): its training loss keeps falling while its validation loss, after
a few evaluations, rises. `EvalstreamCallback(stop_on=("overfitting",),
early_stopping=True)` reads the server's verdict after each evaluation and
stops the Trainer; the run's verdict names the best step, and its directory
(saved by the Trainer at every evaluation) is the checkpoint to keep.

    evalstream-server --data-dir /tmp/es &
    python examples/overfit_and_stop.py --target localhost:50051

Deterministic (seeded); runs in a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default=os.environ.get("EVALSTREAM_TARGET", "localhost:50051"))
    parser.add_argument("--project", default="examples")
    parser.add_argument("--name", default=f"overfit-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--output-dir", default=None, help="checkpoints (default: a temp dir)")
    parser.add_argument("--max-steps", type=int, default=600)
    opts = parser.parse_args(argv)

    import torch
    from evalstream.integrations.transformers import EvalstreamCallback
    from torch import nn
    from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    set_seed(0)
    torch.set_num_threads(1)

    def noisy_set(n: int, generator: torch.Generator) -> list[dict[str, Any]]:
        x = torch.randn(n, 16, generator=generator)
        y = (x[:, 0] + x[:, 1] > 0).long()
        flip = torch.rand(n, generator=generator) < 0.25
        y = torch.where(flip, 1 - y, y)
        return [{"x": x[i], "labels": y[i]} for i in range(n)]

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 512), nn.ReLU(), nn.Linear(512, 2))

        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
            logits = self.net(x)
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = nn.functional.cross_entropy(logits, labels)
            return out

    generator = torch.Generator().manual_seed(0)
    train, evals = noisy_set(32, generator), noisy_set(256, generator)
    output_dir = opts.output_dir or tempfile.mkdtemp(prefix="overfit-")
    args = TrainingArguments(
        output_dir=output_dir,
        max_steps=opts.max_steps,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=256,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=8,
        save_strategy="steps",
        save_steps=8,  # a checkpoint at every evaluation: the best one exists on disk
        report_to=[],
        disable_tqdm=True,
        seed=0,
        use_cpu=True,
    )
    callback = EvalstreamCallback(
        opts.target,
        project=opts.project,
        name=opts.name,
        model="mlp-512",
        stop_on=("overfitting",),
        early_stopping=True,
        # Stop after 4 evaluations without a better validation loss, counted from step 0.
        verdict_config={"monitor": "validation/loss", "patience": 4, "warmup_steps": 0},
    )
    trainer = Trainer(
        model=Classifier(),
        args=args,
        train_dataset=train,
        eval_dataset=evals,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)
    with callback:  # marks the run failed if training raises
        trainer.train()

    run, decision = callback.run, callback.decision
    assert run is not None
    step = trainer.state.global_step
    print(f"run: {run.id} ({opts.project}/{opts.name}), status {run.info.status}")
    if decision is None or not decision.stop:
        print(f"not stopped: trained all {step} steps")
        return 1
    print(f"stopped at step {step} of {opts.max_steps}: {decision.reason}")
    keep = decision.best_checkpoint or os.path.join(output_dir, f"checkpoint-{decision.best_step}")
    print(f"checkpoint to keep: step {decision.best_step}, {keep}")
    callback.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
