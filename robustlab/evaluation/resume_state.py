"""The resumable state of an evaluation: one safetensors file beside its output.

Like AutoAttack's ``state_path``, but for the whole evaluation: each finished curve (its
per-example broken eps, points and kept images), and the worst-case suite's progress (the
per-example broken eps and breaking attack, which attacks and waves have finished, the rows of
the wave under way already done). Tensors are safetensors tensors; everything else is JSON in
the file's metadata, with the fingerprints of the model, the data and the settings. Nothing is
ever unpickled.

The file is written atomically (a kill leaves the last complete state), at most every
``every`` seconds (30 by default) while an attack runs, and always when an attack or a curve
finishes. Opening a state whose fingerprints differ raises a one-line ConfigError: a state is
never reused for another model, other data or other settings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from robustlab.errors import ConfigError
from robustlab.fileio import write_tensors_atomic

log = logging.getLogger(__name__)

STATE_VERSION = 1
SAVE_EVERY_S = 30.0  # the longest a kill can cost, but for the batch under way
_PARTS = {"model": "model weights", "data": "data", "config": "evaluation settings"}


class EvaluationState:
    """Named sections (``meta``: JSON-able dict, ``tensors``: name -> tensor) with the
    evaluation's fingerprint; ``path`` None keeps everything in memory only."""

    def __init__(
        self, path: str | Path | None, fingerprint: Mapping[str, str], every: float | None = None
    ):
        self.path = None if path is None else Path(path)
        self.fingerprint = dict(fingerprint)
        self.every = SAVE_EVERY_S if every is None else float(every)
        self.sections: dict[str, dict[str, Any]] = {}
        self.tensors: dict[str, dict[str, torch.Tensor]] = {}
        self.resumed = False
        self.saves = 0
        self._last_save = time.monotonic()

    @classmethod
    def open(
        cls,
        path: str | Path | None,
        fingerprint: Mapping[str, str],
        resume: bool = True,
        every: float | None = None,
    ) -> EvaluationState:
        """The state at ``path``: the saved one when ``resume`` and the file exists (its
        fingerprint must match, else ConfigError), else a fresh one (written over the file)."""
        state = cls(path, fingerprint, every)
        if state.path is None or not resume or not state.path.exists():
            return state
        meta, tensors = _read(state.path)
        saved = meta.get("fingerprint", {})
        differ = [
            k for k in sorted(set(saved) | set(fingerprint)) if saved.get(k) != fingerprint.get(k)
        ]
        if differ or meta.get("version") != STATE_VERSION:
            what = " and ".join(_PARTS.get(k, k) for k in differ) or "format version"
            raise ConfigError(
                f"the evaluation state {state.path} was written by another evaluation (its "
                f"{what} differ): delete or move it, or start afresh with resume off "
                "(eval.resume=false)"
            )
        state.sections = meta.get("sections", {})
        for key, tensor in tensors.items():
            section, _, name = key.partition("/")
            state.tensors.setdefault(section, {})[name] = tensor
        state.resumed = bool(state.sections)
        return state

    def get(self, section: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        """(meta, tensors) of ``section``, or None when it was never stored."""
        if section not in self.sections:
            return None
        return self.sections[section], self.tensors.get(section, {})

    def put(self, section: str, meta: dict[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
        """Replace ``section`` (in memory; `save` writes)."""
        self.sections[section] = meta
        self.tensors[section] = {k: v.detach().cpu().clone() for k, v in tensors.items()}

    def due(self) -> bool:
        """Whether a throttled `save` would write now."""
        return self.path is not None and time.monotonic() - self._last_save >= self.every

    def save(self, force: bool = False) -> bool:
        """Write the file if ``force`` or ``every`` seconds passed since the last write."""
        if self.path is None or not (force or self.due()):
            return False
        meta = {"version": STATE_VERSION, "fingerprint": self.fingerprint}
        meta["sections"] = self.sections
        flat = {
            f"{section}/{name}": tensor
            for section, tensors in self.tensors.items()
            for name, tensor in tensors.items()
        }
        write_tensors_atomic(self.path, flat, metadata={"state": json.dumps(meta)})
        self._last_save, self.saves = time.monotonic(), self.saves + 1
        return True

    def describe(self) -> str:
        """What the state holds as done, one phrase per section (their ``summary``)."""
        parts = [meta.get("summary", name) for name, meta in self.sections.items()]
        return "; ".join(parts) or "nothing"

    def announce(self) -> None:
        """The one log line of a resumed evaluation: which file, what was already done."""
        if self.resumed:
            log.info(
                "resuming the evaluation from %s: already done: %s", self.path, self.describe()
            )


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("state", "{}"))
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (OSError, ValueError, SafetensorError) as err:
        raise ConfigError(
            f"cannot read the evaluation state {path} ({err}): delete it, or start afresh with "
            "resume off (eval.resume=false)"
        ) from None
    return meta, tensors


def open_state(
    state: EvaluationState | str | Path | None,
    fingerprint: Mapping[str, str],
    resume: bool = True,
) -> EvaluationState:
    """``state`` itself when it is one already (a caller's, shared by several parts of one
    evaluation), else the state at the path ``state`` (None: in memory only), announced."""
    if isinstance(state, EvaluationState):
        return state
    opened = EvaluationState.open(state, fingerprint, resume)
    opened.announce()
    return opened


__all__ = ["SAVE_EVERY_S", "EvaluationState", "open_state"]
