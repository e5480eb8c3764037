"""Guidance as Model transformers (monograph §8): each function maps a `jdiff.Model` to a guided
`jdiff.Model`, so any solver samples it (DESIGN §3).

| function | guided score | module |
|---|---|---|
| `classifier_free(model, s, null_label=...)` | $s\\nabla\\log p_t(x\\mid c) + (1-s)\\nabla\\log p_t(x)$ | `cfg` |
| `classifier_guidance(model, clf_apply, clf_params, s, label)` | $\\nabla\\log p_t(x) + s\\nabla\\log p_\\psi(c\\mid x_t)$ | `classifier` |
| `training_free(model, loss_fn, η)` | $\\nabla\\log p_t(x) - \\eta\\nabla_{x_t}\\ell(\\hat x_0(x_t), c)$ | `training_free` |
| `dps`, `pigdm`, `projection`, `pseudo_inverse` | posterior score for $y = A x_0 + \\sigma_y z$ | `inverse` |

Guidance scale convention (DESIGN §2): s = 1 is plain conditional sampling, s = 0 unconditional.
Guided models keep every value that may change (scale, labels, interval bounds, measurements) in
`params`, so new values never recompile; `Model.nfe_per_call` reports the network evaluations per
call (2 for classifier-free guidance) and the solvers count them.
"""

from jdiff.guidance.base import add_score
from jdiff.guidance.cfg import classifier_free
from jdiff.guidance.classifier import (
    NoiseConditionalClassifier,
    classifier_guidance,
    classifier_loss,
    mixture_classifier,
)
from jdiff.guidance.inverse import DPS_STEP_RULES, dps, pigdm, projection, pseudo_inverse
from jdiff.guidance.operators import Denoising, Downsample, Inpainting, LinearOperator
from jdiff.guidance.training_free import training_free

__all__ = [
    "add_score",
    "classifier_free",
    "NoiseConditionalClassifier",
    "classifier_loss",
    "classifier_guidance",
    "mixture_classifier",
    "training_free",
    "dps",
    "pigdm",
    "projection",
    "pseudo_inverse",
    "DPS_STEP_RULES",
    "LinearOperator",
    "Denoising",
    "Inpainting",
    "Downsample",
]
