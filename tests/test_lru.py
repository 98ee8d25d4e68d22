"""The LRU backbone (LRURec, multihead for TME-PSR): the parallel scan against a loop recurrence, step() against
the scan, padding invariance, its initialisation, and the multi-interest scoring rule through the module, the
Recommender and the checkpoint path."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_chain_datamodule, quiet_trainer

from lightning_seqrec import TMEPSR, LRURec
from lightning_seqrec.backbones.lru import LRUBackbone, linear_scan, ring_init
from lightning_seqrec.checkpoint import load_checkpoint
from lightning_seqrec.errors import ConfigError
from lightning_seqrec.retrieval import Recommender

SETTINGS = [(1, "mix"), (4, "mix"), (4, "max")]


def loop_recurrence(u: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    h, states = torch.zeros_like(u[:, 0]), []
    for k in range(u.shape[1]):
        h = lam * h + u[:, k]
        states.append(h)
    return torch.stack(states, 1)


@pytest.mark.parametrize("length", [1, 2, 5, 13, 64, 100])
def test_parallel_scan_equals_the_loop(length):
    torch.manual_seed(length)
    u = torch.randn(3, length, 2, 6, dtype=torch.cfloat)
    radius, phase = 0.8 + 0.19 * torch.rand(2, 6), 2 * math.pi * torch.rand(2, 6)
    lam = torch.polar(radius, phase)
    torch.testing.assert_close(linear_scan(u, lam), loop_recurrence(u, lam), atol=1e-5, rtol=1e-5)


def padded(lengths: list[int], width: int, dim: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.arange(width)[None, :] >= width - torch.tensor(lengths)[:, None]
    return torch.randn(len(lengths), width, dim), mask


@pytest.mark.parametrize(("heads", "interests"), SETTINGS)
def test_step_equals_the_scan_at_every_position(heads, interests):
    torch.manual_seed(0)
    backbone = LRUBackbone(16, num_layers=2, num_heads=heads, interests=interests, dropout=0.3).eval()
    x, mask = padded([9, 1, 4], 9)
    full = backbone(x, mask)
    for row in range(3):
        state, start = backbone.init_state(1), int((~mask[row]).sum())
        for t in range(start, 9):
            state, hidden = backbone.step(state, x[row : row + 1, t])
            torch.testing.assert_close(hidden[0], full[row, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("heads", "interests"), SETTINGS)
def test_outputs_do_not_depend_on_padding(heads, interests):
    torch.manual_seed(1)
    backbone = LRUBackbone(16, num_layers=2, num_heads=heads, interests=interests, dropout=0.0).eval()
    x, mask = padded([6, 1, 3], 6)
    base = backbone(x, mask)
    more_x = torch.cat([torch.randn(3, 5, 16), x], 1)  # padding rows hold junk: it must not leak in
    more_mask = torch.cat([torch.zeros(3, 5, dtype=torch.bool), mask], 1)
    torch.testing.assert_close(backbone(more_x, more_mask)[:, 5:], base, atol=1e-6, rtol=1e-6)
    assert torch.all(base[~mask] == 0)
    all_padding = backbone(x[:1], torch.zeros(1, 6, dtype=torch.bool))
    assert torch.all(all_padding == 0)


def test_ring_initialisation_follows_lrurec():
    torch.manual_seed(0)
    nu_log, theta_log, gamma_log = ring_init(3, 2000, 0.8, 0.99)
    radius = torch.exp(-torch.exp(nu_log))
    bands = torch.linspace(0.8, 0.99, 4)
    for h in range(3):  # each head on its own band, from short to long memories
        assert bands[h] - 1e-6 <= radius[h].min() and radius[h].max() <= bands[h + 1] + 1e-6
    assert (torch.exp(theta_log) <= 2 * math.pi).all() and (torch.exp(theta_log) > 0).all()
    torch.testing.assert_close(torch.exp(gamma_log), torch.sqrt(1 - radius**2))
    one_head = torch.exp(-torch.exp(ring_init(1, 2000, 0.8, 0.99)[0]))
    assert one_head.min() >= 0.8 - 1e-6 and one_head.max() <= 0.99 + 1e-6 and one_head.max() > 0.97


def test_bad_settings_are_one_line_errors():
    for kwargs in ({"num_heads": 3}, {"interests": "sum"}, {"r_min": 0.99, "r_max": 0.8}, {"num_layers": 0}):
        with pytest.raises(ConfigError) as err:
            LRUBackbone(16, **kwargs)
        assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An LRURec with 4 best-match interests, trained one epoch on the chain log: (module, datamodule, ckpt)."""
    torch.manual_seed(0)
    dm = make_chain_datamodule()
    module = LRURec(dm.num_items, embedding_dim=16, max_len=dm.max_len, num_heads=4, interests="max", dropout=0.1)
    folder = tmp_path_factory.mktemp("lru")
    trainer = quiet_trainer(max_epochs=1, default_root_dir=folder, enable_checkpointing=True)
    trainer.fit(module, dm)
    trainer.test(module, dm, verbose=False)
    return module, dm, trainer.checkpoint_callback.best_model_path or trainer.checkpoint_callback.last_model_path


def test_max_interest_scores_items_by_their_best_interest(trained):
    module, dm, _ = trained
    assert module.num_interests == 4
    histories = [dm.user_history(user)[-5:] for user in dm.sequences.users[:6]]
    scores = module.score_histories(histories, exclude_seen=False)
    batch = module.encode_histories(histories)
    with torch.no_grad():
        from lightning_seqrec.batch import inference_batch

        hidden = module.eval()(inference_batch(batch, module.max_len))["hidden"][:, -1]
    interests = hidden.unflatten(-1, (4, 16))  # [B, H, d]
    expected = torch.einsum("bhd,nd->bhn", interests, module.item_embedding.weight).amax(1)
    torch.testing.assert_close(scores[:, 1:], expected[:, 1:])


def test_recommender_merges_interests_exactly(trained):
    module, dm, _ = trained
    histories = [dm.user_history(user)[-5:] for user in dm.sequences.users[:8]]
    direct = module.recommend(histories, k=7)
    served = Recommender(module, kind="flat").recommend(histories, k=7)
    assert [[r["item_id"] for r in row] for row in served] == [[r["item_id"] for r in row] for row in direct]
    for row_served, row_direct in zip(served, direct, strict=True):
        for a, b in zip(row_served, row_direct, strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-4)


def test_step_state_scores_like_the_whole_history(trained):
    module, dm, _ = trained
    history = dm.user_history(dm.sequences.users[0])[-dm.max_len :]
    state = None
    for item in history:
        state, scores = module.step_state(state, item)
    torch.testing.assert_close(scores, module.score_histories([history], exclude_seen=False), atol=1e-4, rtol=1e-4)


def test_checkpoint_round_trip_keeps_the_interests(trained):
    module, dm, ckpt = trained
    loaded = load_checkpoint(ckpt)
    histories = [dm.user_history(user)[-5:] for user in dm.sequences.users[:4]]
    assert loaded.num_interests == 4 and loaded.architecture["backbone"] == "lru"
    torch.testing.assert_close(loaded.score_histories(histories), module.score_histories(histories))


def test_tme_psr_trains_recommends_with_time_and_steps_in_o1(tmp_path):
    """TMEPSR (multihead LRU + dual-view time encoder) on the chain log with timestamps: it trains, refuses a history
    without times in one line, and stepping encoder and LRU event by event scores as the whole timed history."""
    torch.manual_seed(0)
    dm = make_chain_datamodule()
    module = TMEPSR(dm.num_items, embedding_dim=16, max_len=dm.max_len, dropout=0.1)
    assert module.uses_time and module.num_interests == 4 and module.architecture["input_encoder"] == "dual_time"
    quiet_trainer(max_epochs=1).fit(module, dm)
    user = dm.sequences.users[0]
    history, times = dm.user_history(user)[-6:], dm.user_times(user)[-6:]
    with pytest.raises(ConfigError, match="reads timestamps") as refused:
        module.recommend([history], k=3)
    assert "\n" not in str(refused.value)
    assert len(module.recommend([history], k=3, timestamps=[times])[0]) == 3
    state = None
    for item, time in zip(history, times, strict=True):
        state, scores = module.step_state(state, item, time)
    expected = module.score_histories([history], exclude_seen=False, timestamps=[times])
    torch.testing.assert_close(scores, expected, atol=1e-4, rtol=1e-4)
