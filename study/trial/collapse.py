"""Collapse detection: does a trained model's output depend on its input?

A reconstruction model can reach a low loss, and even a decent AUROC, while
returning nearly the same image for every input (e.g. SGD with a steep `exp`
objective). Its score is then a fixed function of the input alone (distance to
one image), which a model-free baseline gives for free; such a trial must not be
crowned. Two measures, on held-out normal samples (never trained on):

- `collapse_var_ratio` = total across-sample variance of the reconstructions /
  that of the inputs (sum over pixels of the per-pixel variance). A model that
  follows its input keeps a sizeable share of the inputs' variance; a constant
  output has 0.
- `collapse_loss_ratio` = the model's mean base loss / that of the trivial
  predictor which outputs the mean training image for every input. The trivial
  predictor has ratio 1; a model that uses its input beats it.

Rule (data-independent: a ratio to the same data's own variance, so no constant
depends on the dataset or the metric's scale): a trial is `collapsed` when its
reconstructions keep less than `VAR_RATIO_MIN` = 1% of the inputs' variance,
i.e. their standard deviation across samples is below a tenth of the inputs'.
For the optimal linear reconstructor under MSE (PCA) this ratio is the fraction
of variance explained, so 1% means "explains less than a hundredth of what
varies": its score is then essentially the distance to one fixed image. The
loss ratio is logged beside it but is not part of the rule: an under-trained
model can be worse than the mean image and still follow its input, which is
a weak model, not a collapsed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from study.core.vocab import VAR_RATIO_MIN
from study.training.losses import Metric


@dataclass(frozen=True)
class CollapseCheck:
    """The two ratios and the verdict of `measure_collapse`."""

    var_ratio: float
    loss_ratio: float

    @property
    def collapsed(self) -> bool:
        """True when the output barely depends on the input (see the module docstring)."""
        return self.var_ratio < VAR_RATIO_MIN

    @property
    def metrics(self) -> dict[str, float]:
        return {
            "collapse_var_ratio": self.var_ratio,
            "collapse_loss_ratio": self.loss_ratio,
            "collapsed": float(self.collapsed),
        }


@torch.no_grad()
def measure_collapse(
    model: nn.Module, x: torch.Tensor, train_mean: torch.Tensor, metric: Metric, batch_size: int = 512
) -> CollapseCheck:
    """Measure collapse on held-out normal samples `x` [N, C, H, W] (N >= 2).

    `train_mean` [C, H, W] is the mean training image (the trivial predictor).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    recon = torch.cat(
        [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    )
    model.train(was_training)
    x = x.float().cpu()
    var_in = x.var(dim=0).sum()
    var_out = recon.var(dim=0).sum()
    var_ratio = float(var_out / var_in) if var_in > 0 else float("nan")
    model_loss = metric.score(recon, x).mean()
    trivial = train_mean.float().cpu().expand_as(x)
    trivial_loss = metric.score(trivial, x).mean()
    loss_ratio = float(model_loss / trivial_loss) if trivial_loss > 0 else float("nan")
    return CollapseCheck(var_ratio, loss_ratio)
