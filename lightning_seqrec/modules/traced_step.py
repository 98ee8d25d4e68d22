"""`TracedStep`: a recurrent backbone's `step` run through a TorchScript trace at inference.

One event of one user costs a few dozen small tensor operations, and in eager mode their Python dispatch is most
of the time; a trace runs the same operations without it, frozen (weights as constants) and optimised for
inference (linear layers on pre-transposed weights). A backbone opts in with `traceable_step = True` (the LRU
does; nn.GRU and nn.LSTM read values into Python while tracing, so GRU4Rec and LSTM are stepped eagerly). The
trace is taken on the first call and again whenever the parameters or the input shapes change. A backbone whose
step does not trace faithfully (the tracer saw a value read into Python, could not record an operation, or the
traced result differs from the eager one) is stepped eagerly from then on, with a warning.
"""

from __future__ import annotations

import warnings
import weakref

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lightning_seqrec.backbones.registry import parameter_versions


def _flatten(state) -> tuple[list[torch.Tensor], object]:
    """The tensors of a state (a tensor, or a list / tuple of tensors) and how to rebuild it."""
    if isinstance(state, torch.Tensor):
        return [state], None
    return list(state), type(state)


def _rebuild(tensors: list[torch.Tensor], kind) -> object:
    return tensors[0] if kind is None else kind(tensors)


class _Step(nn.Module):
    """`backbone.step` over flat tensors, the form `torch.jit.trace` takes."""

    def __init__(self, backbone: nn.Module, kind, with_time: bool):
        super().__init__()
        self.backbone, self.kind, self.with_time = backbone, kind, with_time

    def forward(self, *args):
        *state, x = args[:-1] if self.with_time else args
        time = args[-1] if self.with_time else None
        new_state, hidden = self.backbone.step(_rebuild(state, self.kind), x, time)
        return (*_flatten(new_state)[0], hidden)


class TracedStep:
    """`traced(backbone, state, x, time)` returns `backbone.step(state, x, time)`: through the trace in eval mode
    without gradients, eagerly otherwise."""

    def __init__(self):
        self.key, self.graph, self.eager = None, None, False

    def __call__(self, backbone: nn.Module, state, x: torch.Tensor, time: torch.Tensor | None):
        tensors, kind = _flatten(state)
        plain = all(isinstance(t, torch.Tensor) for t in tensors)
        opted_in = getattr(backbone, "traceable_step", False)
        if self.eager or not opted_in or not plain or torch.is_grad_enabled() or backbone.training:
            return backbone.step(state, x, time)
        inputs = (*tensors, x) if time is None else (*tensors, x, time)
        key = (kind, tuple((t.shape, t.dtype) for t in inputs), parameter_versions(backbone))
        if key != self.key:
            expected = backbone.step(state, x, time)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    graph = torch.jit.trace(_Step(backbone, kind, time is not None).eval(), inputs, check_trace=False)
                    # weights as constants, linear layers with pre-transposed weights: fewer, cheaper operations
                    graph = torch.jit.optimize_for_inference(torch.jit.freeze(graph))
                    got = graph(*inputs)
            except RuntimeError as err:  # an operation the tracer or the optimiser cannot take
                return self._step_eagerly(backbone, str(err).strip().splitlines()[0], expected)
            want = (*_flatten(expected[0])[0], expected[1])
            frozen = [str(w.message) for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
            same = len(got) == len(want) and all(
                torch.allclose(g, w, atol=1e-5, rtol=1e-5) for g, w in zip(got, want, strict=True)
            )
            if frozen or not same:  # a value read in Python, frozen into the trace, or another result
                return self._step_eagerly(
                    backbone, frozen[0].split(".")[0] if frozen else "its traced result differs", expected
                )
            self.key, self.graph = key, graph
            return expected
        *new_state, hidden = self.graph(*inputs)
        return _rebuild(new_state, kind), hidden

    def _step_eagerly(self, backbone: nn.Module, reason: str, result):
        """Give up tracing `backbone` (with a warning saying why) and return the eager `result`."""
        self.eager = True
        name = type(backbone).__name__
        rank_zero_warn(f"{name}.step does not trace faithfully ({reason}); it is stepped eagerly from now on.")
        return result


_TRACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def traced_step(backbone: nn.Module, state, x: torch.Tensor, time: torch.Tensor | None):
    """`backbone.step(state, x, time)` through the backbone's own `TracedStep`, kept beside it (not on it, so the
    module pickles and saves as before)."""
    return _TRACES.setdefault(backbone, TracedStep())(backbone, state, x, time)
