"""S²CE: equal to full CE at alpha 0, equal to a direct loop computation of its formula otherwise."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_seqrec.errors import ConfigError
from lightning_seqrec.objectives import FullCrossEntropy
from lightning_seqrec.objectives.semantic_ce import SemanticSoftCE


class Table(torch.nn.Module):
    """A stand-in model: an item table a `ModelView` can score against."""

    def __init__(self, num_items: int, dim: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.num_items = num_items
        self.item_embedding = torch.nn.Embedding(num_items + 1, dim)
        self.item_embedding.weight.data = torch.randn(num_items + 1, dim, generator=generator)


def batch_of(num_items: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(3, 4, 8, generator=generator, requires_grad=True)
    target = torch.randint(1, num_items + 1, (3, 4), generator=generator)
    target[0, :2] = 0  # padding positions predict nothing
    return {"hidden": hidden, "mask": target > 0}, {"target_seq": target}


def direct_s2ce(hidden, target, table, semantics, alpha, tau) -> torch.Tensor:
    """The README's formula, one position and one item at a time."""
    losses = []
    for h, y in zip(hidden[target > 0], target[target > 0].tolist(), strict=True):
        scores = [float(h @ table[j]) for j in range(1, len(table))]
        log_z = math.log(sum(math.exp(s) for s in scores))
        cos = [float(F.cosine_similarity(semantics[y], semantics[j], dim=0)) / tau for j in range(1, len(table))]
        others = [c for j, c in enumerate(cos, start=1) if j != y]
        log_norm = math.log(sum(math.exp(c) for c in others))
        loss = 0.0
        for j, (score, c) in enumerate(zip(scores, cos, strict=True), start=1):
            q = (1 - alpha) * (j == y) + (alpha * math.exp(c - log_norm) if j != y else 0.0)
            loss -= q * (score - log_z)
        losses.append(loss)
    return torch.tensor(sum(losses) / len(losses))


def test_alpha_zero_is_full_cross_entropy():
    model = Table(9, 8)
    outputs, batch = batch_of(9)
    expected = FullCrossEntropy()(outputs, batch, model)
    s2ce = SemanticSoftCE(alpha=0.0)
    assert torch.allclose(s2ce(outputs, batch, model), expected)
    s2ce.set_semantics(torch.randn(10, 5))  # with semantics fixed too: alpha 0 ignores them
    assert torch.allclose(s2ce(outputs, batch, model), expected)


@pytest.mark.parametrize("alpha, tau", [(0.1, 0.1), (0.5, 1.0), (1.0, 0.3)])
def test_matches_the_formula_computed_directly(alpha, tau):
    model = Table(9, 8)
    outputs, batch = batch_of(9)
    semantics = torch.randn(10, 6, generator=torch.Generator().manual_seed(5))
    s2ce = SemanticSoftCE(alpha=alpha, tau=tau)
    s2ce.set_semantics(semantics)
    got = s2ce(outputs, batch, model)
    table = model.item_embedding.weight.detach()
    expected = direct_s2ce(outputs["hidden"].detach(), batch["target_seq"], table, semantics, alpha, tau)
    assert torch.allclose(got.detach(), expected, atol=1e-4)
    got.backward()
    assert outputs["hidden"].grad.abs().sum() > 0


def test_without_semantics_it_reads_the_item_table_detached():
    model = Table(9, 8)
    outputs, batch = batch_of(9)
    s2ce = SemanticSoftCE(alpha=0.3, tau=0.5)
    fixed = SemanticSoftCE(alpha=0.3, tau=0.5)
    fixed.set_semantics(model.item_embedding.weight)
    assert torch.allclose(s2ce(outputs, batch, model), fixed(outputs, batch, model))


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="alpha must lie in"):
        SemanticSoftCE(alpha=1.5)
    with pytest.raises(ConfigError, match="tau and temperature"):
        SemanticSoftCE(tau=0)
    s2ce = SemanticSoftCE(alpha=0.2)
    s2ce.set_semantics(torch.randn(4, 3))
    with pytest.raises(ConfigError, match="cover 3 items but the model has 9"):
        s2ce(*batch_of(9), Table(9, 8))
