"""`TracedStep`: a recurrent backbone's inference step through a TorchScript trace gives the eager step's result,
is retraced when the weights change, and falls back to the eager step for a backbone that does not trace."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_seqrec import GRU4Rec, LRURec
from lightning_seqrec.modules.traced_step import TracedStep


def walk(step, backbone, items: torch.Tensor, embed) -> list[torch.Tensor]:
    """Hidden states after each event of `items [B, T]`, stepped with `step(backbone, state, x, time)`."""
    state, out = backbone.init_state(len(items)), []
    for t in range(items.shape[1]):
        state, hidden = step(backbone, state, embed(items[:, t]), None)
        out.append(hidden)
    return out


@torch.no_grad()
def test_traced_steps_equal_eager_steps_and_follow_weight_changes():
    torch.manual_seed(0)
    module = LRURec(50, embedding_dim=16, max_len=10, num_heads=2).eval()
    items = torch.randint(1, 51, (3, 7))
    traced = TracedStep()
    eager = walk(lambda b, s, x, t: b.step(s, x, t), module.backbone, items, module.item_embedding)
    for got, want in zip(walk(traced, module.backbone, items, module.item_embedding), eager, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    assert traced.graph is not None and not traced.eager
    for p in module.backbone.parameters():  # an in-place update, as an optimiser step or a load makes
        p.mul_(0.5)
    eager = walk(lambda b, s, x, t: b.step(s, x, t), module.backbone, items, module.item_embedding)
    assert all(
        torch.allclose(got, want, atol=1e-6)
        for got, want in zip(walk(traced, module.backbone, items, module.item_embedding), eager, strict=True)
    )


@torch.no_grad()
def test_a_backbone_that_does_not_opt_in_is_stepped_eagerly():
    module, traced = GRU4Rec(50, embedding_dim=16, max_len=10).eval(), TracedStep()
    items = torch.randint(1, 51, (2, 4))
    eager = walk(lambda b, s, x, t: b.step(s, x, t), module.backbone, items, module.item_embedding)
    got = walk(traced, module.backbone, items, module.item_embedding)
    assert traced.graph is None and all(torch.equal(g, w) for g, w in zip(got, eager, strict=True))


class ValueBranching(nn.Module):
    """A step whose Python branch reads a value, which a trace freezes at the traced example's branch."""

    traceable_step = True  # wrongly claimed: the tracer's warning must catch it

    def init_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, 4)

    def step(self, state, x, time=None):
        state = state + x if float(x.sum()) > 0 else state - x
        return state, state * 2


@torch.no_grad()
def test_a_step_that_does_not_trace_is_stepped_eagerly_with_a_warning():
    backbone, traced = ValueBranching().eval(), TracedStep()
    state = backbone.init_state(1)
    with pytest.warns(UserWarning, match="does not trace faithfully"):
        for sign in (1.0, -1.0, 1.0):  # the second event's branch differs from the first's
            x = torch.full((1, 4), sign)
            want = backbone.step(state, x)
            state, hidden = traced(backbone, state, x, None)
            assert torch.equal(state, want[0]) and torch.equal(hidden, want[1])
    assert traced.eager


class Untraceable(ValueBranching):
    """A step with an output the tracer cannot record (a nested dict)."""

    def step(self, state, x, time=None):
        return state + x, {"sum": state + x}


@torch.no_grad()
def test_a_step_the_tracer_refuses_is_stepped_eagerly_with_a_warning():
    backbone, traced = Untraceable().eval(), TracedStep()
    state, x = backbone.init_state(1), torch.ones(1, 4)
    with pytest.warns(UserWarning, match="does not trace faithfully"):
        state, hidden = traced(backbone, state, x, None)
    assert traced.eager and torch.equal(state, x) and torch.equal(hidden["sum"], x)
    state, hidden = traced(backbone, state, x, None)  # eager from then on: no second trace, no second warning
    assert torch.equal(hidden["sum"], 2 * x)
