"""Normal-versus-pool AUROC: the test AUROC, up to a known affine map, estimated without labels.

A trial's score separates held-out normal images N (never trained on) from the
unlabelled pool P. If P is a mixture of normals drawn like N (share 1 - pi) and
anomalies A (share pi), then, ties counted one half,

    AUROC(N vs P) = pi * AUROC(N vs A) + (1 - pi) / 2

(positive-unlabelled learning: Menon et al., ICML 2015; Jain, White & Radivojac,
KDD 2017). pi is the same for every trial of a study, so this label-free
statistic ranks trials exactly as their test AUROC does in expectation, for
any kind of anomaly the pool holds — semantic ones included, which synthetic
local corruptions do not measure (bench/RESULTS.md, Fashion-MNIST bags).

It needs two things the product cannot check from images alone, so the report
says them: the held-out normals look like the pool's normals (no drift between
training and deployment data), and the pool holds anomalies at all. The
second is tested by study/selection/pool.py: with no anomalies every trial's AUROC is 1/2 plus noise
of known size (`null_sd`), and `pool_informative` asks whether some trial
departs from 1/2 beyond that noise, in either direction, with a Bonferroni
margin over the study's trials. A departure below 1/2 is evidence too: the
identity then says every such trial scores the anomalies below the normals
(test AUROC < 1/2), and the ranking still holds.
"""

from __future__ import annotations

import torch

from study.labelfree.stssad import separation_auroc

Tensor = torch.Tensor


def unlabelled_auroc(normal_scores: Tensor, pool_scores: Tensor) -> float:
    """AUROC of held-out normal scores (negatives) against the unlabelled pool's (positives)."""
    return separation_auroc(normal_scores.double().cpu(), pool_scores.double().cpu())
