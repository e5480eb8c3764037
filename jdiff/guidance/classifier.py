"""Classifier guidance (Dhariwal & Nichol 2021): a noise-conditional classifier and the guided model.

A classifier $p_\\psi(c \\mid x_t, t)$ trained on perturbed data with the cross-entropy

$$\\mathcal L(\\psi) = \\mathbb E_{t,(x_0,c),\\varepsilon}\\big[-\\log p_\\psi(c \\mid \\alpha_t x_0 + \\sigma_t\\varepsilon, t)\\big]$$

tilts a diffusion model towards class c with scale s (monograph §8, table "Classifier guidance"):

$$\\tilde s(x, t) = \\nabla\\log p_t(x) + s\\,\\nabla_x\\log p_\\psi(c \\mid x, t), \\qquad
\\tilde\\varepsilon = \\hat\\varepsilon - s\\,\\sigma_t\\,\\nabla_x\\log p_\\psi(c \\mid x, t).$$

With the exact class posterior $w_c(x)$ of a Gaussian mixture (`mixture_classifier`) this is
exactly the classifier-free tilted score (DESIGN §8).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree

from jdiff.guidance.base import (
    add_score,
    broadcast_labels,
    check_model,
    guided_model,
    in_interval,
    interval_params,
)
from jdiff.loss.time_dist import AbstractTimeDistribution, get_time_distribution
from jdiff.model import Model
from jdiff.nn.embeddings import SinusoidalEmbedding
from jdiff.process.base import AbstractProcess

__all__ = [
    "NoiseConditionalClassifier",
    "classifier_loss",
    "classifier_guidance",
    "mixture_classifier",
]


class NoiseConditionalClassifier(nnx.Module):
    """MLP classifier on noisy data: $(x_t[B, ...], t[B]) \\mapsto$ logits `[B, K]`.

    The time goes through a sinusoidal embedding (`jdiff.nn.SinusoidalEmbedding`, of `t` as given)
    and a 2-layer MLP to a vector that is added to the pre-activation of every hidden layer
    (the conditioning scheme of `jdiff.nn.MLP`). `x` is flattened per example.

    Args:
        data_dim: D, the number of values per example.
        num_classes: K.
        hidden: hidden widths.
        embed_dim: time-embedding width (even).
        activation: the nonlinearity.
        dtype, param_dtype: compute and parameter dtypes (logits are returned in float32 or x's
            dtype, whichever is wider).
        rngs: `nnx.Rngs` for initialisation.

    Call: `module(x[B, ...], t[B] or scalar, cond=None) -> logits[B, K]` (`cond` is accepted so
    that `jdiff.nn.split_apply` works; it must be None). Ablated variants (e.g. no time input)
    are not provided.
    """

    def __init__(
        self,
        data_dim: int,
        num_classes: int,
        hidden: Sequence[int] = (128, 128),
        embed_dim: int = 64,
        activation: Callable[[Array], Array] = nnx.silu,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        *,
        rngs: nnx.Rngs,
    ):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2; got {num_classes}")
        if not hidden:
            raise ValueError("hidden must contain at least one layer width")
        self.data_dim = data_dim
        self.num_classes = num_classes
        self.activation = activation
        lin = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.time_embed = SinusoidalEmbedding(embed_dim)
        self.time_mlp1 = nnx.Linear(embed_dim, embed_dim, **lin)
        self.time_mlp2 = nnx.Linear(embed_dim, embed_dim, **lin)
        widths = [data_dim, *hidden]
        self.layers = nnx.List(
            [nnx.Linear(a, b, **lin) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.time_proj = nnx.List([nnx.Linear(embed_dim, b, use_bias=False, **lin) for b in hidden])
        self.out = nnx.Linear(hidden[-1], num_classes, **lin)

    def __call__(self, x: Array, t: Array, cond: Any = None) -> Array:
        if cond is not None:
            raise ValueError("NoiseConditionalClassifier takes no cond (pass None)")
        b = x.shape[0]
        h = x.reshape(b, -1)
        if h.shape[1] != self.data_dim:
            raise ValueError(f"x must hold {self.data_dim} values per example; got {x.shape}")
        t = jnp.broadcast_to(jnp.asarray(t), (b,))
        c = self.time_mlp2(self.activation(self.time_mlp1(self.time_embed(t))))
        for layer, proj in zip(self.layers, self.time_proj, strict=True):
            h = self.activation(layer(h) + proj(c))
        logits = self.out(h)
        return logits.astype(jnp.promote_types(x.dtype, jnp.float32))


def classifier_loss(
    apply_fn: Callable,
    process: AbstractProcess,
    *,
    time_dist: str | AbstractTimeDistribution = "uniform",
) -> Callable[[PyTree, PRNGKeyArray, dict], tuple[Array, dict[str, Array]]]:
    """Cross-entropy of a noise-conditional classifier on perturbed data (Dhariwal & Nichol 2021).

    Args:
        apply_fn: `apply_fn(params, x_t[B, ...], t[B]) -> logits[B, K]` (e.g. from
            `jdiff.nn.split_apply(NoiseConditionalClassifier(...))`).
        process: the forward process of the diffusion model to be guided.
        time_dist: `"uniform"`, `"lognormal"`, `"logit_normal"` or an
            `AbstractTimeDistribution` (`jdiff.loss.time_dist`).

    Returns:
        A pure `loss(params, key, batch) -> (scalar, metrics)` with `batch = {"x": x0[B, ...],
        "label": int[B]}`: draws $t \\sim$ `time_dist`, $x_t = \\alpha_t x_0 + \\sigma_t\\varepsilon$, and
        returns the mean of $-\\log\\mathrm{softmax}(\\text{logits})_c$. Metrics: `"loss"`,
        `"accuracy"` (argmax accuracy on the noisy batch).

    Raises:
        ValueError: on an unknown time distribution, or a batch without `"x"` and `"label"`.
    """
    tdist = get_time_distribution(time_dist, process)

    def loss(params: PyTree, key: PRNGKeyArray, batch: dict) -> tuple[Array, dict[str, Array]]:
        if not isinstance(batch, dict) or "x" not in batch or "label" not in batch:
            raise ValueError("classifier_loss needs a dict batch with keys 'x' and 'label'")
        x0, label = batch["x"], batch["label"]
        key_t, key_eps = jax.random.split(key)
        t = tdist.sample(key_t, (x0.shape[0],), x0.dtype)
        x_t, _ = process.perturb(key_eps, x0, t)
        logp = jax.nn.log_softmax(apply_fn(params, x_t, t), axis=-1)
        nll = -jnp.take_along_axis(logp, label[:, None].astype(jnp.int32), axis=-1)[:, 0]
        value = jnp.mean(nll)
        acc = jnp.mean((jnp.argmax(logp, axis=-1) == label).astype(logp.dtype))
        return value, {"loss": value, "accuracy": acc}

    return loss


@dataclasses.dataclass(frozen=True)
class _MixtureLogits:
    """Exact class log-posterior of a `GaussianMixture`: `params = (mixture, process)`."""

    def __call__(self, params, x: Array, t: Array) -> Array:
        mixture, process = params
        return mixture.log_class_posterior(x, t, process)


def mixture_classifier(mixture: Any, process: AbstractProcess) -> tuple[Callable, tuple]:
    """The exact noise-conditional classifier of a `jdiff.analytic.GaussianMixture`.

    Returns `(apply_fn, params)` with `apply_fn(params, x[B, D], t[B]) = log w_k(x)` `[B, K]`,
    the log class posterior $\\log p_t(c = k \\mid x)$ (valid logits), for use with
    `classifier_guidance`.
    """
    return _MixtureLogits(), (mixture, process)


@dataclasses.dataclass(frozen=True)
class _ClassifierApply:
    """Hashable apply function of a classifier-guided model; `params = (inner, g)`."""

    classifier_apply: Callable
    nfe_per_call: int
    has_label: bool
    has_interval: bool

    def __call__(self, params: tuple[Model, dict], x: Array, t: Array, cond: Any = None):
        inner, g = params
        out = inner.raw(x, t, cond)
        labels = g["label"] if self.has_label else cond
        if labels is None:
            raise ValueError("classifier_guidance needs a label: pass label=... or cond=labels")
        labels = broadcast_labels(labels, x.shape[0])

        def log_p(xx):
            logits = self.classifier_apply(g["classifier_params"], xx, t)
            logp = jax.nn.log_softmax(logits, axis=-1)
            return jnp.sum(jnp.take_along_axis(logp, labels[:, None], axis=-1))

        grad = jax.grad(log_p)(x).astype(out.dtype)
        delta = g["scale"].astype(out.dtype) * grad
        if self.has_interval:
            delta = jnp.where(in_interval(g, t, x), delta, 0.0)
        return add_score(inner.process, inner.prediction, out, x, t, delta)


def classifier_guidance(
    model: Model,
    classifier_apply_fn: Callable,
    classifier_params: PyTree,
    scale: ArrayLike,
    label: ArrayLike | None = None,
    *,
    interval: tuple[float, float] | None = None,
) -> Model:
    """Classifier guidance: $\\tilde\\varepsilon = \\hat\\varepsilon - s\\,\\sigma_t\\nabla_x\\log p_\\psi(c\\mid x_t, t)$.

    Args:
        model: the diffusion `jdiff.Model` (usually unconditional; a conditional one receives
            the sampler's `cond` unchanged).
        classifier_apply_fn: hashable `f(params, x[B, ...], t[B]) -> logits[B, K]`
            (`jdiff.nn.split_apply` of a `NoiseConditionalClassifier`, or `mixture_classifier`).
        classifier_params: its params (traced; new values do not recompile).
        scale: guidance scale s (scalar).
        label: the class c, int scalar or `[B]`; if None the labels come from the sampler's
            `cond` at call time.
        interval: optional `(t_lo, t_hi)`: guide only for times inside it.

    Returns:
        A `jdiff.Model` with the inner model's process and prediction kind (the score change is
        converted to that kind by `jdiff.guidance.base.add_score`).

    NFE: `nfe_per_call` equals the inner model's: the classifier's forward and backward pass are
    extra work that is not a denoiser evaluation and is not counted.

    Reference: Dhariwal & Nichol 2021, "Diffusion models beat GANs on image synthesis"; monograph §8.
    """
    model = check_model(model, "classifier_guidance")
    g = {
        "scale": jnp.asarray(scale, jnp.result_type(float)),
        "classifier_params": classifier_params,
        **interval_params(interval),
    }
    if label is not None:
        g["label"] = jnp.asarray(label)
        if not jnp.issubdtype(g["label"].dtype, jnp.integer):
            raise ValueError(f"label must be an integer (scalar or [B]); got {g['label'].dtype}")
    apply = _ClassifierApply(
        classifier_apply_fn, model.nfe_per_call, label is not None, interval is not None
    )
    return guided_model(apply, model, g)
