"""One scoring rule: objectives score through the `ModelView` by the rule evaluation ranks by, so a cosine-scoring
module trains every next-item loss on cosines / τ and a dot-scoring one on dot products."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_sasrec

from lightning_seqrec.objectives import BinaryCrossEntropy, FullCrossEntropy, ModelView, SampledSoftmax
from lightning_seqrec.objectives.base import next_item_positions


@pytest.fixture(params=["dot", "cosine"])
def scored(request, chain_datamodule):
    """(module, view, outputs, batch, reference scorer) for one scoring kind."""
    torch.manual_seed(0)
    module = tiny_sasrec(chain_datamodule, scoring=request.param)
    batch = next(iter(chain_datamodule.train_dataloader()))
    outputs = module(batch)
    tau = 0.2

    def reference(hidden, items):  # written out, not through scoring_operands
        if request.param == "cosine":
            return F.normalize(hidden, dim=-1) @ F.normalize(items, dim=-1).T / tau
        return hidden @ items.T

    return module, ModelView(module), outputs, batch, reference, tau


def test_view_scores_as_evaluation_ranks(scored):
    module, view, outputs, _, _, _ = scored
    hidden = outputs["hidden"][:, -1]
    torch.testing.assert_close(view.score_all(hidden), module.score_hidden(hidden)[:, 1:])


def test_full_ce_scores_by_the_module_rule(scored):
    module, view, outputs, batch, reference, tau = scored
    hidden, target = next_item_positions(outputs, batch)
    expected = F.cross_entropy(reference(hidden, module.item_embedding.weight[1:]), target - 1)
    for chunk_size in (None, 7):
        loss = FullCrossEntropy(temperature=tau, chunk_size=chunk_size)(outputs, batch, module)
        torch.testing.assert_close(loss, expected)


def test_sampled_losses_score_by_the_module_rule(scored):
    module, view, outputs, batch, reference, tau = scored
    hidden, target = next_item_positions(outputs, batch)
    items = module.item_embedding.weight

    torch.manual_seed(5)
    softmax = SampledSoftmax(num_negatives=9, temperature=tau)(outputs, batch, view)
    torch.manual_seed(5)
    negatives = torch.randint(1, module.num_items + 1, (9,))
    pos = (reference(hidden, items[target]).diagonal())[:, None]
    neg = reference(hidden, items[negatives]).masked_fill(negatives[None, :] == target[:, None], float("-inf"))
    expected = F.cross_entropy(torch.cat([pos, neg], 1), torch.zeros(len(target), dtype=torch.long))
    torch.testing.assert_close(softmax, expected)

    torch.manual_seed(6)
    bce = BinaryCrossEntropy(num_negatives=3, temperature=tau)(outputs, batch, view)
    torch.manual_seed(6)
    negatives = torch.randint(1, module.num_items + 1, (len(target), 3))
    pos = reference(hidden, items[target]).diagonal()
    neg = torch.stack([reference(hidden[m : m + 1], items[negatives[m]])[0] for m in range(len(target))])
    expected = (F.softplus(-pos) + (F.softplus(neg) * (negatives != target[:, None])).sum(-1)).mean()
    torch.testing.assert_close(bce, expected)
