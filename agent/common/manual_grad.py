"""Hand-written forward and backward passes of plain MLPs, for SAC's hot update (pure functions).

Autograd records every op of SAC's update and replays it backwards; on a CPU at the notes'
sizes ([256, 256], batch 256) that bookkeeping, the extra copies around batched matmuls and
the gradients it computes and then throws away cost about as much as the matmuls themselves.
These functions do the same maths directly, with three savings autograd cannot make on its own:

* rows that share weights share one matmul: the actor runs once on ``[obs; next_obs]`` and the
  critic once on ``[(obs, a); (obs, a~)]`` (batch 2B instead of two passes of B);
* weight gradients come only from the rows whose loss owns those weights (``rows``): the
  critic's weights get the TD loss's rows, never the actor loss's, which is exactly what
  freezing the critic during the actor's pass means;
* an activation's derivative is read from its output (ReLU: y > 0), so nothing else is kept.

Layers are ``(W [out, in], b [out])`` pairs and ``activation`` is one of ``THROUGH``; the
last layer is linear. ``tests/test_manual_grad.py`` checks every gradient against autograd.

Each layer computes in its own weight's dtype: hand ``forward``/``backward`` bfloat16 copies of
the hidden layers (``compute_copies``) and float32 heads, and the big matmuls run in bf16 (fp32
accumulation inside oneDNN; on CPUs with AMX or AVX512-BF16 several times faster than fp32)
while the outputs, losses and every gradient handed to the optimiser stay float32.
"""

from __future__ import annotations

import torch

Layers = list[tuple[torch.Tensor, torch.Tensor]]


aten = torch.ops.aten

#: activation name -> (grad wrt its output, its output) -> grad wrt its input. aten's fused
#: backward kernels: an explicit mask (y > 0).float() * g costs ~10x more on a CPU
THROUGH = {
    "relu": lambda g, y: aten.threshold_backward(g, y, 0.0),
    "tanh": lambda g, y: aten.tanh_backward(g, y),
    "elu": lambda g, y: aten.elu_backward(g, 1.0, 1.0, 1.0, True, y),
    "leaky_relu": lambda g, y: aten.leaky_relu_backward(g, y, 0.01, True),
}
_FORWARD = {
    "relu": lambda x: x.clamp_min_(0.0),
    "tanh": torch.tanh_,
    "elu": torch.nn.functional.elu_,
    "leaky_relu": torch.nn.functional.leaky_relu_,
}


def forward(
    x: torch.Tensor, layers: Layers, activation: str, linear_out: bool = True
) -> list[torch.Tensor]:
    """[x, h_1, ..., h_L]: every layer's output (hidden ones after the activation; the last
    one linear if ``linear_out``, else activated like the others, i.e. a trunk). Each h_i
    with i < L is stored in layer i+1's dtype (it is that layer's input; a ReLU mask survives
    the rounding to bf16 exactly), h_L in layer L's."""
    act = _FORWARD[activation]
    outs = [x]
    for i, (w, b) in enumerate(layers):
        h = torch.addmm(b, _as(outs[-1], w), w.t())
        if i < len(layers) - 1 or not linear_out:
            h = act(h)
        outs.append(h if i == len(layers) - 1 else _as(h, layers[i + 1][0]))
    return outs


def backward(
    outs: list[torch.Tensor],
    layers: Layers,
    grad_out: torch.Tensor,
    activation: str,
    grads: Layers,
    rows: int | None = None,
) -> torch.Tensor:
    """Backpropagate ``grad_out`` (dL/d of the last layer's linear output) through
    ``forward``'s pass (only ``outs[:-1]``, the layers' inputs, are read).

    Weight and bias gradients use only the first ``rows`` rows (all if None) and are written
    into ``grads`` (same shapes as ``layers``, float32 even where a layer computes in bf16;
    overwritten). Returns dL/d(first layer's pre-activation) for every row, in the first
    layer's dtype, so the caller takes the input gradient it needs (``delta @ W_1``, e.g. only
    some rows or columns).
    """
    through = THROUGH[activation]
    delta = grad_out
    for i in range(len(layers) - 1, -1, -1):
        w = layers[i][0]
        gw, gb = grads[i]
        delta = _as(delta, w)  # casts only where the layers' dtypes change
        d = delta if rows is None else delta[:rows]
        x = _as(outs[i] if rows is None else outs[i][:rows], w)
        if gw.dtype == w.dtype:
            torch.mm(d.t(), x, out=gw)
            torch.sum(d, 0, out=gb)
        else:  # a low-precision layer: its fp32 gradient buffers take the rounded result
            gw.copy_(torch.mm(d.t(), x))
            torch.sum(d, 0, dtype=gb.dtype, out=gb)
        if i > 0:  # outs[i] is in layer i's dtype, as is this input gradient
            delta = through(_input_grad(delta, w), outs[i])
    return delta


def _as(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` in ``like``'s dtype (no copy when it already is)."""
    return x if x.dtype == like.dtype else x.to(like.dtype)


class ComputeCopies:
    """Low-precision copies of some float32 tensors (e.g. the hidden layers' weights), refreshed
    in one fused call before each update: ``refresh()`` then read ``copies`` (same order)."""

    def __init__(self, tensors: list[torch.Tensor], dtype: torch.dtype = torch.bfloat16):
        self.sources = list(tensors)
        self.copies = [torch.empty_like(t, dtype=dtype) for t in self.sources]

    def refresh(self) -> list[torch.Tensor]:
        torch._foreach_copy_(self.copies, self.sources)
        return self.copies


def _input_grad(delta: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """delta @ W; an outer product (a one-unit layer, e.g. a Q head) as a broadcast multiply."""
    return delta * w if w.shape[0] == 1 else torch.mm(delta, w)


class FusedAdamStep:
    """``opt.step()`` of a ``torch.optim.Adam(fused=True)`` without its per-call Python work
    (about half of its 0.6 ms on SAC's nets here): the parameter, gradient and moment lists are
    gathered once and handed straight to the fused kernel. The optimiser's own state tensors
    are used, so its state_dict (checkpoints) is unchanged. Build it after the first
    ``opt.step()`` (the state must exist); the gradients must stay the same tensors (``.grad``
    written in place), and it must be rebuilt after ``opt.load_state_dict``."""

    def __init__(self, opt: torch.optim.Optimizer):
        self.groups = []
        for g in opt.param_groups:
            if g["amsgrad"] or g["weight_decay"] or g["maximize"]:
                raise ValueError("FusedAdamStep covers plain Adam only")
            ps = list(g["params"])
            st = [opt.state[p] for p in ps]
            self.groups.append(
                (
                    g,
                    ps,
                    [p.grad for p in ps],
                    [s["exp_avg"] for s in st],
                    [s["exp_avg_sq"] for s in st],
                    [s["step"] for s in st],
                )
            )

    def __call__(self) -> None:
        for g, ps, grads, m, v, steps in self.groups:
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                ps,
                grads,
                m,
                v,
                [],
                steps,
                amsgrad=False,
                lr=g["lr"],
                beta1=g["betas"][0],
                beta2=g["betas"][1],
                weight_decay=0.0,
                eps=g["eps"],
                maximize=False,
            )
