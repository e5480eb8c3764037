"""Flax NNX networks for jdiff: time embeddings, an MLP, and the bridge to :class:`jdiff.Model`.

Networks are ordinary ``nnx.Module`` objects; :func:`split_apply` turns one into a pure
``apply_fn(params, x, t, cond)`` plus a params pytree, which is what ``jdiff.Model`` holds.
"""

from jdiff.nn.embeddings import FourierEmbedding, FourierFrequencies, SinusoidalEmbedding
from jdiff.nn.mlp import MLP, NNXApply, split_apply

__all__ = [
    "MLP",
    "FourierEmbedding",
    "FourierFrequencies",
    "NNXApply",
    "SinusoidalEmbedding",
    "split_apply",
]
