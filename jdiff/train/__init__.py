"""Training: train state, EMA, a jitted step with a NaN guard, orbax checkpoints, and a
resumable training loop.

``train(loss_fn, optimizer, init_params, batch_fn, num_steps=..., key=..., workdir=...)`` is the
entry point; the pieces (``init_train_state``, ``make_train_step``, ``Checkpointer``) compose for
custom loops.
"""

from jdiff.train.checkpoint import Checkpointer
from jdiff.train.ema import ema_update
from jdiff.train.loop import train
from jdiff.train.state import TrainState, init_train_state
from jdiff.train.step import check_skips, make_train_step

__all__ = [
    "Checkpointer",
    "TrainState",
    "check_skips",
    "ema_update",
    "init_train_state",
    "make_train_step",
    "train",
]
