"""SparseAwareAdamW: plain AdamW on dense gradients, lazy row-wise Adam on sparse ones (as SparseAdam), and the
sparse item-table path of the module."""

import copy

import pytest
import torch
from torch import nn

from lightning_seqrec import SASRec
from lightning_seqrec.errors import ConfigError
from lightning_seqrec.objectives import FullCrossEntropy, SampledSoftmax
from lightning_seqrec.optim import SparseAwareAdamW


def test_dense_parameters_follow_adamw_exactly():
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3), nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    ours = SparseAwareAdamW(a.parameters(), lr=0.01, weight_decay=0.1)
    reference = torch.optim.AdamW(b.parameters(), lr=0.01, weight_decay=0.1)
    for _ in range(4):
        x = torch.randn(7, 5)
        for model, opt in ((a, ours), (b, reference)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_sparse_rows_follow_sparse_adam_and_untouched_rows_stay():
    torch.manual_seed(1)
    a, b = nn.Embedding(20, 4, sparse=True), nn.Embedding(20, 4, sparse=True)
    b.load_state_dict(a.state_dict())
    before = a.weight.detach().clone()
    ours = SparseAwareAdamW(a.parameters(), lr=0.05, weight_decay=0.0)
    reference = torch.optim.SparseAdam(b.parameters(), lr=0.05)
    batches = [torch.tensor([1, 3, 3, 7]), torch.tensor([3, 9]), torch.tensor([1, 12, 7])]
    for ids in batches:
        for model, opt in ((a, ours), (b, reference)):
            opt.zero_grad()
            model(ids).sin().sum().backward()
            opt.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6)
    untouched = torch.ones(20, dtype=torch.bool)
    untouched[torch.cat(batches)] = False
    assert torch.equal(a.weight[untouched], before[untouched])
    assert not torch.equal(a.weight[~untouched], before[~untouched])


def test_weight_decay_applies_to_touched_rows_only():
    emb = nn.Embedding(6, 2, sparse=True)
    with torch.no_grad():
        emb.weight.fill_(1.0)
    opt = SparseAwareAdamW(emb.parameters(), lr=0.1, weight_decay=0.5)
    emb(torch.tensor([2])).sum().mul(0.0).backward()  # zero gradient: only the decay moves row 2
    opt.step()
    assert torch.allclose(emb.weight[2], torch.full((2,), 0.95))
    assert torch.equal(emb.weight[[0, 1, 3, 4, 5]], torch.ones(5, 2))


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(2)
    emb = nn.Embedding(10, 3, sparse=True)
    opt = SparseAwareAdamW(emb.parameters(), lr=0.05)
    emb(torch.tensor([1, 2])).sum().backward()
    opt.step()
    clone = nn.Embedding(10, 3, sparse=True)
    clone.load_state_dict(emb.state_dict())
    clone_opt = SparseAwareAdamW(clone.parameters(), lr=0.05)
    clone_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # as through a checkpoint file
    for model, o in ((emb, opt), (clone, clone_opt)):
        o.zero_grad()
        model(torch.tensor([2, 5])).cos().sum().backward()
        o.step()
    assert torch.equal(emb.weight, clone.weight)


def test_module_trains_a_sparse_item_table_with_sampled_softmax():
    torch.manual_seed(3)
    module = SASRec(
        50,
        embedding_dim=8,
        max_len=6,
        num_heads=2,
        sparse_item_grad=True,
        objectives={"ss": SampledSoftmax(num_negatives=5)},
    )
    batch = {
        "item_seq": torch.tensor([[0, 3, 4, 5], [1, 2, 3, 4]]),
        "target_seq": torch.tensor([[0, 4, 5, 6], [2, 3, 4, 7]]),
    }
    before = module.item_embedding.weight.detach().clone()
    optimizer = module.configure_optimizers()
    outputs = module(batch)
    loss = module.objectives["ss"](outputs, batch, module)
    loss.backward()
    assert module.item_embedding.weight.grad.is_sparse
    optimizer.step()
    changed = (module.item_embedding.weight != before).any(dim=1)
    assert changed[[1, 2, 3, 4, 5, 6, 7]].all()  # every input and target row moved
    assert changed.sum() < 50  # rows no step touched stayed


def test_sparse_table_refuses_full_cross_entropy():
    with pytest.raises(ConfigError, match="sparse_item_grad"):
        SASRec(50, sparse_item_grad=True, objectives={"ce": FullCrossEntropy()})
