"""Personalised explanations: what they may cite, the occlusion they rest on, the gate, the metrics and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import chain_log, quiet_trainer, tiny_sasrec
from test_cli import chain_table, seqrec

from lightning_seqrec import Interactions, SeqRecDataModule, SeqRecModule
from lightning_seqrec.backbones import register_backbone
from lightning_seqrec.errors import ConfigError, DataError
from lightning_seqrec.explain import (
    CONTENT_UNAVAILABLE,
    Evidence,
    Explainer,
    Explanation,
    attribute_precision,
    faithfulness,
    personalisation,
)


def genre_items(num_items: int = 30) -> pd.DataFrame:
    """Titles and two or three '|'-separated genres per chain item; item 7 has only the placeholder."""
    rows = {i: (f"Movie {i}", f"G{i % 3}|H{i % 5}" + ("|Rare" if i % 7 == 0 else "")) for i in range(1, num_items + 1)}
    rows[7] = ("Movie 7", "(no genres listed)")
    return pd.DataFrame.from_dict(rows, orient="index", columns=["title", "category"]).rename_axis("item_id")


@pytest.fixture(scope="module")
def trained():
    """A tiny SASRec trained two epochs on the chain log whose items carry genres, and its datamodule."""
    columns = {"user_id": "user", "item_id": "item", "timestamp": "ts"}
    data = Interactions.from_frame(chain_log(), columns=columns, items=genre_items())
    dm = SeqRecDataModule(data, max_len=8, batch_size=16)
    dm.setup()
    torch.manual_seed(0)
    model = tiny_sasrec(dm)
    quiet_trainer(max_epochs=2, limit_val_batches=0).fit(model, dm)
    return model.eval(), dm


def histories_of(dm, count: int = 12) -> list[np.ndarray]:
    return [dm.vocab.encode(dm.user_history(f"u{u}"))[:-1] for u in range(count)]


def test_item_attributes_by_index_with_placeholders_left_out(trained):
    _, dm = trained
    attributes = dm.item_attributes()
    assert len(attributes) == dm.num_items + 1 and attributes[0] == []
    index = dm.vocab.encode([14, 7])
    assert attributes[index[0]] == ["G2", "H4", "Rare"] and attributes[index[1]] == []
    sequence_items = pd.DataFrame({"attributes": [[3, 5]]}, index=pd.Index([1], name="item_id"))
    frame = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2]})
    assert Interactions(frame, items=sequence_items).attributes() == {1: ["attribute 3", "attribute 5"]}


def test_explanations_cite_only_history_items_and_attributes_the_item_has(trained):
    model, dm = trained
    explainer = Explainer(model, dm.item_attributes(), weighting=0.5, cite=4, cite_attributes=5)
    attributes = [set(a) for a in dm.item_attributes()]
    histories = histories_of(dm)
    items = [list(range(1, dm.num_items + 1))] * len(histories)  # every item, recommended or not
    cited_any = 0
    for history, explanations in zip(histories, explainer.explain(histories, items), strict=True):
        window = history[-model.max_len :]
        in_history = set().union(*(attributes[j] for j in window))
        for item, x in zip(items[0], explanations, strict=True):
            assert set(x.items) <= set(window.tolist()) and len(x.items) <= 4
            assert set(x.attributes) <= attributes[item] & in_history
            assert x.attribute_weights == sorted(x.attribute_weights, reverse=True)
            cited_any += bool(x.attributes)
    assert cited_any > 0  # the check above is not vacuous


def test_occlusion_contributions_equal_scores_without_each_item(trained):
    model, dm = trained
    explainer = Explainer(model, None)
    history = histories_of(dm, 1)[0]
    window = history[-model.max_len :]
    item = int(window[0] % dm.num_items) + 1
    (evidence,) = explainer.evidence([history], [[item]])[0]
    raw = dm.vocab.decode(window.tolist())
    full = model.score_histories([raw], exclude_seen=False)[0, item]
    assert evidence.score == pytest.approx(float(full), abs=1e-5)
    for j in range(len(window)):
        without = model.score_histories([raw[:j] + raw[j + 1 :]], exclude_seen=False)[0, item]
        assert evidence.contributions[j] == pytest.approx(float(full - without), abs=1e-5)


def test_fixed_weights_cite_by_occlusion_or_by_shared_attributes(trained):
    model, dm = trained
    history = histories_of(dm, 1)[0]
    collaborative = Explainer(model, dm.item_attributes(), weighting=1.0, cite=2)
    (evidence,) = collaborative.evidence([history], [[5]])[0]
    (x,) = collaborative.compose([evidence])
    best = [int(evidence.window[j]) for j in np.argsort(-evidence.contributions) if evidence.contributions[j] > 0]
    assert x.items == list(dict.fromkeys(best))[:2] and x.collaborative_weight == 1.0
    content = Explainer(model, dm.item_attributes(), weighting=0.0, cite=2)
    (y,) = content.compose([evidence])
    shared = {int(evidence.window[j]) for j in np.flatnonzero(evidence.overlaps)}
    assert set(y.items) <= shared and (bool(y.items) == bool(shared))


def test_gate_trained_by_infonce_gives_per_user_weights(trained):
    model, dm = trained
    explainer = Explainer(model, dm.item_attributes()).fit(dm, steps=100)
    first, last = explainer.losses[0], explainer.losses[-1]
    assert last < first  # the InfoNCE bound rose
    evidence = [row[0] for row in explainer.evidence(histories_of(dm), [[3]] * 12)]
    weights = explainer.weights(evidence)
    assert ((weights > 0) & (weights < 1)).all() and np.ptp(weights) > 0  # one weight per user


def test_recommend_explain_in_words_and_without_attributes(trained):
    model, dm = trained
    history = dm.user_history("u2")[:-1]
    model.explainer = None
    with pytest.raises(ConfigError, match="needs an explainer"):
        model.recommend([history], k=2, explain=True)
    Explainer(model, dm.item_attributes(), weighting=0.5)
    for entry in model.recommend([history], k=3, explain=True)[0]:
        words = entry["explanation"]
        names = {name for name, _ in words["because_you_interacted_with"]}
        assert names <= {f"Movie {i}" for i in history} and words["collaborative_weight"] == 0.5
        assert isinstance(words["shared_attributes"], list)
    plain = Explainer(model, None)
    (entry,) = model.recommend([history], k=1, explain=plain)[0]
    words = entry["explanation"]
    assert words["shared_attributes"] is None and words["content_branch"] == CONTENT_UNAVAILABLE
    assert words["collaborative_weight"] == 1.0 and words["because_you_interacted_with"]


def test_bad_settings_are_one_line_errors(trained):
    model, dm = trained
    with pytest.raises(ConfigError, match="weighting"):
        Explainer(model, None, weighting=2)
    with pytest.raises(DataError, match="item_attributes"):
        Explainer(model, [["G1"]] * 3)
    with pytest.raises(ConfigError, match="fit"):
        Explainer(model, dm.item_attributes()).weights(Explainer(model, None).evidence(histories_of(dm, 1), [[1]])[0])


@register_backbone("explain_test_timed")
class TimedSum(torch.nn.Module):
    """A time-aware stand-in: running sums of the item embeddings plus a learned multiple of each event's time."""

    uses_time = True

    def __init__(self, embedding_dim: int = 16):
        super().__init__()
        self.rate = torch.nn.Parameter(torch.randn(embedding_dim))

    def forward(self, embeddings, mask, batch):
        time = batch["time_seq"].to(embeddings.dtype)[..., None] / 100.0
        return torch.cumsum(embeddings * mask[..., None], dim=1) + self.rate * time * mask[..., None]


def test_a_time_aware_model_is_explained_with_its_timestamps(trained):
    _, dm = trained
    torch.manual_seed(0)
    model = SeqRecModule(dm.num_items, backbone="explain_test_timed", embedding_dim=16, max_len=8).eval()
    model.attach_data(dm)
    history, times = [4, 5, 6, 9], [10.0, 30.0, 35.0, 80.0]
    with pytest.raises(ConfigError, match="timestamps"):
        model.recommend([history], k=2, explain=Explainer(model, dm.item_attributes(), weighting=0.5))
    (entry,) = model.recommend([history], k=1, timestamps=[times], explain=True)[0]
    assert entry["explanation"]["because_you_interacted_with"]
    explainer = model.explainer
    indices = dm.vocab.encode(history)
    ((evidence,),) = explainer.evidence([indices], [[2]], [np.asarray(times)])
    without = model.score_histories([history[1:]], exclude_seen=False, timestamps=[times[1:]])[0, 2]
    assert evidence.contributions[0] == pytest.approx(evidence.score - float(without), abs=1e-5)
    result = faithfulness(explainer, [evidence], explainer.compose([evidence]), seen=[indices])
    assert result["pairs"] == 1


def evidence_of(window, item) -> Evidence:
    return Evidence(np.asarray(window), item, 0.0, np.zeros(len(window)), np.zeros(len(window)), torch.zeros(2))


def test_attribute_precision_and_personalisation_by_hand(trained):
    model, _ = trained
    attributes = [[]] + [["A"], ["A", "B"], ["B", "C"]] + [[]] * (model.num_items - 3)
    explainer = Explainer(model, attributes)
    e = evidence_of([1, 2], 3)  # item 3 has B, C; the history has A, B
    good = Explanation([2], [1.0], ["B"], [0.5], 0.5)
    bad = Explanation([2], [1.0], ["B", "C"], [0.5, 0.5], 0.5)
    none = Explanation([2], [1.0], [], [], 0.5)
    result = attribute_precision(explainer, [e, e, e], [good, bad, none])
    assert result == {"precision": pytest.approx(0.75), "coverage": pytest.approx(2 / 3)}
    same = personalisation(["u1", "u2"], [e, e], [good, good])
    assert same == {"differ": 0.0, "attributes_differ": 0.0, "pairs": 1}
    other = personalisation(["u1", "u2", "u3"], [e, e, e], [good, bad, good])
    assert other["pairs"] == 3 and other["differ"] == pytest.approx(2 / 3)


def test_faithfulness_removes_the_cited_items_against_random_ones(trained):
    model, dm = trained
    explainer = Explainer(model, dm.item_attributes(), weighting=1.0)
    histories = histories_of(dm)
    evidence = [row[0] for row in explainer.evidence(histories, [[4]] * len(histories))]
    explanations = explainer.compose(evidence)
    result = faithfulness(explainer, evidence, explanations, seen=histories, draws=2)
    assert result["pairs"] + result["skipped"] == len(histories) and result["pairs"] > 0
    b = next(n for n, x in enumerate(explanations) if x.items and not set(evidence[n].window) <= set(x.items))
    one = faithfulness(explainer, evidence[b : b + 1], explanations[b : b + 1], seen=histories[b : b + 1])
    kept = [dm.vocab.decode([int(j)])[0] for j in evidence[b].window if int(j) not in explanations[b].items]
    expected = evidence[b].score - float(model.score_histories([kept], exclude_seen=False)[0, 4])
    assert one["score_drop_cited"] == pytest.approx(expected, abs=1e-5)
    everything = Explanation(sorted(set(evidence[b].window.tolist())), [], None, [], 1.0)
    assert faithfulness(explainer, evidence[b : b + 1], [everything], seen=histories[b : b + 1])["skipped"] == 1


def test_cli_recommend_explain_true_prints_reasons(tmp_path):
    train = seqrec("train", *chain_table(tmp_path), "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                   "logger=none", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    result = seqrec("recommend", f"ckpt={ckpt}", "history=[1,2,3]", "k=3", "explain=true",
                    f"hydra.run.dir={tmp_path / 'rec'}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if "because you interacted with" in line]
    assert len(lines) == 3 and all(CONTENT_UNAVAILABLE in line for line in lines)
