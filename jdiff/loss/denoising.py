"""The denoising / flow-matching loss template (monograph ch. 6, eq. "general-dm-loss").

$$\\mathcal L(\\phi) = \\mathbb E_{x_0, \\varepsilon,\\, t\\sim p_{time}}\\Big[\\omega(t)\\,
\\tfrac1D\\big\\|\\hat y_\\phi(x_t, t) - (A_t x_0 + B_t\\varepsilon)\\big\\|^2\\Big],
\\qquad x_t = \\alpha_t x_0 + \\sigma_t\\varepsilon,$$

built from four choices: the process (α, σ), the regressed target (`targets`), the time
distribution (`time_dist`) and the weighting (`weighting`). The squared error is **averaged** over
the D non-batch dimensions, then weighted and averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

from jdiff.loss.targets import check_target, equivalence_factor, target_value
from jdiff.loss.time_dist import AbstractTimeDistribution, get_time_distribution
from jdiff.loss.weighting import AbstractWeighting, EDMWeighting, get_weighting
from jdiff.model import PREDICTIONS, EDMPrecond, Model
from jdiff.process.base import AbstractProcess

__all__ = ["make_loss", "make_edm_loss", "drop_labels"]

LossFn = Callable[[PyTree, PRNGKeyArray, Any], tuple[Array, dict[str, Array]]]


def drop_labels(key: PRNGKeyArray, labels: Array, p: float, null_label: int) -> Array:
    """Replace each label by `null_label` with probability `p` (classifier-free guidance training,
    Ho & Salimans 2022).

    Args:
        key: PRNG key.
        labels: integer labels `[B]`.
        p: drop probability in [0, 1].
        null_label: the "no condition" label ∅.

    Returns:
        Labels `[B]`, same dtype.
    """
    drop = jax.random.bernoulli(key, p, labels.shape)
    return jnp.where(drop, jnp.asarray(null_label, labels.dtype), labels)


def _split_batch(batch: Any) -> tuple[Array, Array | None]:
    if isinstance(batch, dict):
        if "x" not in batch:
            raise ValueError(
                f"a dict batch needs key 'x' (and optional 'label'); got {list(batch)}"
            )
        return batch["x"], batch.get("label")
    return batch, None


def make_loss(
    apply_fn: Callable | Model,
    process: AbstractProcess | None = None,
    *,
    prediction: str | None = None,
    target: str | None = None,
    time_dist: str | AbstractTimeDistribution = "uniform",
    weighting: str | AbstractWeighting | Callable = "constant",
    precond: EDMPrecond | None = None,
    cond_dropout: float = 0.0,
    num_classes: int | None = None,
    null_label: int | None = None,
) -> LossFn:
    """Build the loss `loss(params, key, batch) -> (scalar, metrics)` (DESIGN §3 "Loss").

    Each call builds `Model(apply_fn, params, process, prediction, precond)`, draws `t[B]` from
    `time_dist`, perturbs $x_t = \\alpha x_0 + \\sigma\\varepsilon$ (`process.perturb`), and regresses
    the model's prediction of kind `target` onto its closed-form value (`targets.target_value`):

    $$\\text{loss} = \\frac1B\\sum_b \\omega_K(t_b)\\,\\frac1D\\|\\hat y_K(x_{t_b}, t_b) - y_K\\|^2 .$$

    If `target != prediction` the output is converted by the Model's exact conversions (e.g. an
    eps-network trained with an x0 loss). A weighting with a `native` target (likelihood: score;
    EDM: x0) is converted to `target` by the exact per-sample equivalence, so for those the loss
    value does not depend on `target`; "constant", "snr" and callables apply literally.

    Args:
        apply_fn: `apply_fn(params, x[B, ...], t[B], cond) -> [B, ...]`, or a `Model` used as a
            template (its `apply_fn`, `process`, `prediction`, `precond` are the defaults; its
            params are ignored).
        process: the forward process (required unless a Model is given).
        prediction: what `apply_fn` outputs (`PREDICTIONS`); default `"eps"` (`"x0"` with precond).
        target: the regressed quantity (`targets.TARGETS`); default `prediction`.
        time_dist: `"uniform"`, `"lognormal"` (EDM), `"logit_normal"` (SD3), or an
            `AbstractTimeDistribution`.
        weighting: `"constant"`, `"snr"`, `"likelihood"`, `"edm"` (σ_d from `precond`, else 0.5),
            an `AbstractWeighting`, or a callable `w(t[B]) -> [B]`.
        precond: optional `EDMPrecond` (then `apply_fn` is the raw network F, prediction `"x0"`).
        cond_dropout: probability of replacing the label by `null_label` (classifier-free guidance).
        num_classes: number of classes; needed for `cond_dropout > 0` unless `null_label` is given.
        null_label: the label ∅ (default `num_classes`).

    Returns:
        A pure `loss(params, key, batch)`. `batch` is `x0[B, ...]` or `{"x": x0, "label": int[B]}`;
        the label (after dropout) is passed to `apply_fn` as `cond` (None for array batches).
        Metrics: `"loss"`; `"mse"` (unweighted mean squared error in `target`); `"loss_q{i}"`, i = 0..3,
        the mean weighted loss of the examples whose t falls in the i-th quarter of
        `[t_min, t_max]` (0 where a quarter is empty).

    Raises:
        ValueError: unknown names (listing the choices), inconsistent arguments, `cond_dropout > 0`
            without a label source, or a batch without labels when dropout is on.
    """
    if isinstance(apply_fn, Model):
        template = apply_fn
        apply_fn = template.apply_fn
        process = template.process if process is None else process
        prediction = template.prediction if prediction is None else prediction
        precond = template.precond if precond is None else precond
    if process is None:
        raise ValueError("make_loss needs a process (or a Model template that carries one)")
    if prediction is None:
        prediction = "x0" if precond is not None else "eps"
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; valid choices: {list(PREDICTIONS)}")
    target = prediction if target is None else target
    check_target(target)
    tdist = get_time_distribution(time_dist, process)
    sd = precond.sigma_data if precond is not None else 0.5
    weight = get_weighting(weighting, sigma_data=sd)
    if not 0.0 <= cond_dropout <= 1.0:
        raise ValueError(f"cond_dropout must lie in [0, 1]; got {cond_dropout}")
    if null_label is None and num_classes is not None:
        null_label = num_classes
    if cond_dropout > 0 and null_label is None:
        raise ValueError("cond_dropout > 0 needs num_classes (the null label defaults to it)")
    # Build once to validate (prediction/precond consistency); params are swapped per call.
    Model(apply_fn, None, process, prediction, precond)

    def loss(params: PyTree, key: PRNGKeyArray, batch: Any) -> tuple[Array, dict[str, Array]]:
        x0, label = _split_batch(batch)
        if cond_dropout > 0:
            if label is None:
                raise ValueError("cond_dropout > 0 needs a dict batch with a 'label' entry")
        b = x0.shape[0]
        key_t, key_eps, key_drop = jax.random.split(key, 3)
        t = tdist.sample(key_t, (b,), x0.dtype)
        x_t, eps = process.perturb(key_eps, x0, t)
        if cond_dropout > 0:
            label = drop_labels(key_drop, label, cond_dropout, null_label)
        model = Model(apply_fn, params, process, prediction, precond)
        pred = model.predict(target, x_t, t, label)
        y = target_value(process, target, x0, eps, t)
        err = jnp.mean(jnp.reshape((pred - y) ** 2, (b, -1)), axis=-1)
        w = weight(process, t)
        if weight.native is not None and weight.native != target:
            w = w * equivalence_factor(process, t, target, weight.native)
        per_ex = w.astype(err.dtype) * err
        value = jnp.mean(per_ex)
        metrics = {"loss": value, "mse": jnp.mean(err)}
        frac = (t - process.t_min) / (process.t_max - process.t_min)
        quarter = jnp.clip(jnp.floor(4 * frac), 0, 3)
        for i in range(4):
            mask = (quarter == i).astype(per_ex.dtype)
            metrics[f"loss_q{i}"] = jnp.sum(mask * per_ex) / jnp.maximum(jnp.sum(mask), 1.0)
        return value, metrics

    return loss


def make_edm_loss(
    apply_fn: Callable,
    process: AbstractProcess,
    sigma_data: float = 0.5,
    **kwargs,
) -> LossFn:
    """EDM training loss (Karras et al. 2022, Tab. 1): preconditioning with σ_d, x0 target,
    EDM weighting $(\\alpha^2\\sigma_d^2+\\sigma^2)/(\\sigma\\sigma_d)^2$ and log-normal σ̄
    ($P_{mean} = -1.2$, $P_{std} = 1.2$). A thin wrapper over `make_loss`; `kwargs` (e.g.
    `cond_dropout`, `num_classes`, `time_dist`) go to it.

    Args:
        apply_fn: the raw network `F(params, c_in x[B, ...], c_noise[B], cond) -> [B, ...]`.
        process: the forward process (EDM's own: `jdiff.process.EDM()`).
        sigma_data: σ_d.
    """
    kwargs.setdefault("time_dist", "lognormal")
    return make_loss(
        apply_fn,
        process,
        prediction="x0",
        target="x0",
        weighting=EDMWeighting(sigma_data),
        precond=EDMPrecond(sigma_data),
        **kwargs,
    )
