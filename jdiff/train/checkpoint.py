"""Atomic orbax checkpoints of a :class:`TrainState`."""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpointer"]


class Checkpointer:
    """Keeps the last ``max_to_keep`` checkpoints of a train state under ``directory``.

    A thin layer over ``orbax.checkpoint.CheckpointManager`` with ``StandardSave`` /
    ``StandardRestore``: each save writes into a temporary directory and is renamed into place
    only when complete, so a crash mid-save never leaves a checkpoint that ``restore_latest`` would
    pick up. Restores always go against an *abstract* target (shapes, dtypes, tree structure) taken
    from a freshly initialised state, so the restored pytree has exactly the live structure.

    Saves are asynchronous by default (the device-to-host copy is synchronous, so the saved
    state may be donated right after ``save`` returns); call :meth:`wait` or :meth:`close`
    before reading the files. Usable as a context manager.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3, async_save=True):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        self.directory = os.path.abspath(os.fspath(directory))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save
            ),
        )

    def latest_step(self) -> int | None:
        """Step of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Steps of all complete checkpoints, ascending."""
        return sorted(self._manager.all_steps())

    def save(self, state: Any, step: int | None = None) -> bool:
        """Save ``state`` under ``step`` (default ``int(state.step)``); returns whether it saved.
        A step that already has a checkpoint is not saved again."""
        step = int(jax.device_get(state.step)) if step is None else int(step)
        if step in self._manager.all_steps():
            return False
        return self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def restore(self, step: int, like: Any) -> Any:
        """Restore checkpoint ``step`` into the structure, shapes and dtypes of ``like``."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def restore_latest(self, like: Any) -> Any | None:
        """Restore the newest complete checkpoint against ``like``; None if there is none."""
        step = self.latest_step()
        return None if step is None else self.restore(step, like)

    def wait(self) -> None:
        """Block until pending asynchronous saves are finished."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Wait for pending saves and release the manager."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
