"""TensorBoard event files of one trial, with env steps on the x axis.

Every trial writes ``<trial>/tb/events.out.tfevents.*``, so ``tensorboard --logdir <sweep dir>``
shows a whole sweep as one run per trial, named by its directory (``trials/<trial_id>/tb``, the
trial id holding its factors), and ``tensorboard --logdir runs/`` the runs of ``sweep train``:

- every metric of every evaluation row as a scalar at ``global_step = env_step`` (``eval/return``,
  ``train/...``, ``loss/...``, ``perf/...``); seed-batched trials log per seed (``seed3/eval/...``)
- the init diagnostics at step 0 (``init/...`` scalars) and the initial policy's actions per
  action dimension as TensorBoard histograms (``init/actions/dim0``, ...)
- at the end, the resolved config as hparams with the final metric (``hparams/eval/return``: the
  mean over the last evaluations' rows, as the report's final score).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.trialdir import flatten

TB_DIR = "tb"


class TrialBoard:
    """Writes one trial's event files; every method is a no-op after :meth:`close`."""

    def __init__(self, out_dir: str | Path, config: dict[str, Any], seeds: list[int]):
        from torch.utils.tensorboard import SummaryWriter

        self.config, self.seeds = config, seeds
        self.writer: Any = SummaryWriter(log_dir=str(Path(out_dir) / TB_DIR))

    def _tag(self, seed: Any, name: str) -> str:
        return name if len(self.seeds) == 1 else f"seed{seed}/{name}"

    def rows(self, rows: list[dict[str, Any]]) -> None:
        """Scalars of evaluation rows (one per seed) at their env step."""
        if self.writer is None:
            return
        for row in rows:
            step = int(row["env_step"])
            for key, value in row.items():
                if key in ("env_step", "seed") or not _is_number(value):
                    continue
                self.writer.add_scalar(self._tag(row.get("seed"), key), float(value), step)
        self.writer.flush()

    def init_diagnostics(self, diags: dict[str, dict[str, Any]], n_states: int) -> None:
        """The initial policy's action histograms at step 0 (``diags``: {seed: diagnostics})."""
        if self.writer is None:
            return
        for seed, diag in diags.items():
            edges = np.asarray(diag["edges"], dtype=np.float64)
            centres = 0.5 * (edges[1:] + edges[:-1])
            for dim, shares in enumerate(diag["hist"]):
                counts = np.rint(np.asarray(shares, dtype=np.float64) * n_states)
                num = float(counts.sum())
                if num == 0:
                    continue
                nonzero = np.flatnonzero(counts)
                self.writer.add_histogram_raw(
                    self._tag(seed, f"init/actions/dim{dim}"),
                    min=float(edges[nonzero[0]]),
                    max=float(edges[nonzero[-1] + 1]),
                    num=num,
                    sum=float((counts * centres).sum()),
                    sum_squares=float((counts * centres**2).sum()),
                    bucket_limits=edges[1:].tolist(),
                    bucket_counts=counts.tolist(),
                    global_step=0,
                )
        self.writer.flush()

    def finish(
        self, rows: list[dict[str, Any]], metric: str = "eval/return", last_k: int = 3
    ) -> None:
        """hparams: the resolved config with the final ``metric`` (mean of the last ``last_k``
        evaluations of every seed)."""
        if self.writer is None:
            return
        steps = sorted({int(r["env_step"]) for r in rows if _is_number(r.get(metric))})
        final = [
            float(r[metric])
            for r in rows
            if int(r["env_step"]) in steps[-last_k:] and _is_number(r.get(metric))
        ]
        if final:
            hparams = {k: _hparam(v) for k, v in flatten(self.config).items()}
            self.writer.add_hparams(
                hparams,
                {f"hparams/{metric}": float(np.mean(final))},
                run_name=".",
                global_step=steps[-1],
            )
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _hparam(value: Any) -> Any:
    """TensorBoard hparams take bool, int, float and str."""
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)
