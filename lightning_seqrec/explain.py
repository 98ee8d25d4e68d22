"""Personalised explanations of recommendations: a collaborative and a content reason, mixed per user.

Our reading of TME-PSR's "dual-branch mutual-information weighting" (the paper gives only its abstract):

- collaborative branch: the contribution of each history item j to the recommended item's score, by occlusion,
  `c_j = s(i | history) - s(i | history without position j)`, from one batch of L + 1 forward passes per history
  (it explains every item of that history's top-k at once);
- content branch: the history items that share attributes with the recommended item, `a_j = |A(j) ∩ A(i)| /
  |A(i)|`, and the shared attributes, weighted by the share of the history that carries them;
- the cited history items are the top of `w_u · c̃_j + (1 - w_u) · ã_j` (each branch normalised to sum 1 over its
  positive part), where `w_u = σ(MLP(h_u))` comes from the user's representation `h_u`. The gate is trained post hoc
  on the frozen recommender by InfoNCE, a lower bound on the mutual information between the target item's
  embedding and the explanation's representation `w_u · Σ c̃_j e_j + (1 - w_u) · Σ β_k v_k` (v_k: the mean
  embedding of the items carrying attribute k), with in-batch negatives.

The quality metrics (`attribute_precision`, `faithfulness`, `personalisation`) are defined in the README.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lightning_seqrec.batch import inference_batch, trim_padding
from lightning_seqrec.errors import ConfigError, DataError
from lightning_seqrec.modules.seqrec import evaluating

CONTENT_UNAVAILABLE = "unavailable: the model's data has no item attributes"


@dataclass
class Evidence:
    """What both branches know about one (history, recommended item) pair, before any weighting: the window the
    model reads (item indices, oldest first), each position's occlusion contribution and attribute overlap, the
    item's score, the user's representation and the window's timestamps (None for a model without time)."""

    window: np.ndarray
    item: int
    score: float
    contributions: np.ndarray
    overlaps: np.ndarray
    hidden: torch.Tensor
    times: np.ndarray | None = None


@dataclass
class Explanation:
    """One explanation in item indices: the cited history items and attributes with their weights, and the
    collaborative weight w_u that mixed the branches (attributes None: no attribute data)."""

    items: list[int]
    item_weights: list[float]
    attributes: list[str] | None
    attribute_weights: list[float]
    collaborative_weight: float


def _with_each_left_out(window: np.ndarray) -> list[np.ndarray]:
    """`window` itself followed by the window without each of its positions (only itself when it has one item)."""
    if len(window) == 1:
        return [window]
    keep = ~np.eye(len(window), dtype=bool)
    return [window, *(window[k] for k in keep)]


def _normalised(values: np.ndarray) -> np.ndarray:
    """The positive part of `values` scaled to sum 1 (all zero when nothing is positive)."""
    positive = np.clip(values, 0.0, None)
    total = positive.sum()
    return positive / total if total > 0 else positive


class Explainer:
    """Explains a `SeqRecModule`'s recommendations with a collaborative and a content reason (see the module doc).

    `attributes[i]` lists item index i's attribute names (`datamodule.item_attributes()`); None or all empty: the
    content branch is unavailable and explanations are collaborative only. `weighting="learned"` mixes the branches
    by the per-user gate (train it with `fit`); a number in [0, 1] is a fixed collaborative weight (0.5: the fixed
    50/50 mix, 1: collaborative only, 0: content only). Building one attaches it to the module, so that
    `module.recommend(..., explain=True)` uses it.
    """

    def __init__(
        self,
        module,
        attributes: Sequence[Sequence[str]] | None = None,
        weighting: str | float = "learned",
        cite: int = 3,
        cite_attributes: int = 3,
        temperature: float = 0.1,
        gate_hidden: int = 32,
        batch_rows: int = 1024,
    ):
        if weighting != "learned" and not (isinstance(weighting, (int, float)) and 0.0 <= weighting <= 1.0):
            raise ConfigError(f"weighting={weighting!r} is not valid; use 'learned' or a number in [0, 1], e.g. 0.5.")
        if cite < 1 or cite_attributes < 1:
            raise ConfigError(f"cite={cite} and cite_attributes={cite_attributes} must be >= 1; pass e.g. cite=3.")
        self.module, self.weighting = module, weighting
        self.cite, self.cite_attributes, self.temperature, self.batch_rows = (
            cite,
            cite_attributes,
            temperature,
            batch_rows,
        )
        self.attributes = self._attribute_sets(attributes)
        width = int(module.item_embedding.weight.shape[1]) * int(getattr(module, "num_interests", 1))
        self.gate = nn.Sequential(nn.Linear(width, gate_hidden), nn.ReLU(), nn.Linear(gate_hidden, 1))
        self.fitted = False
        self.losses: list[float] = []
        module.explainer = self

    def _attribute_sets(self, attributes) -> list[frozenset] | None:
        """Per item index a frozenset of attribute names, or None when there are none at all."""
        if attributes is None or not any(attributes):
            return None
        if len(attributes) != self.module.num_items + 1:
            raise DataError(
                f"attributes has {len(attributes)} rows but the model has {self.module.num_items} items; pass one "
                "list per item index, row 0 for padding: datamodule.item_attributes() of the model's data."
            )
        return [frozenset(names) for names in attributes]

    @property
    def has_content(self) -> bool:
        return self.attributes is not None

    # ----------------------------------------------------------------- scoring
    @torch.no_grad()
    def _forward(self, windows: list[np.ndarray], times: list[np.ndarray] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Newest hidden states `[B, D]` and unmasked scores `[B, N+1]` of index windows, `batch_rows` at a time."""
        hiddens, scores = [], []
        with evaluating(self.module):
            for start in range(0, len(windows), self.batch_rows):
                part = slice(start, start + self.batch_rows)
                batch = inference_batch(
                    windows[part], self.module.max_len, None if times is None else times[part], self.module.device
                )
                hidden = self.module(trim_padding(batch))["hidden"][:, -1]
                hiddens.append(hidden)
                scores.append(self.module.score_hidden(hidden))
        return torch.cat(hiddens), torch.cat(scores)

    def evidence(
        self, histories: list[np.ndarray], items: list[Sequence[int]], times: list[np.ndarray] | None = None
    ) -> list[list[Evidence]]:
        """The evidence for each item index of `items[b]` given history `histories[b]` (indices, oldest first;
        `times[b]` its timestamps for a model that reads time): one batch of L + 1 windows per history, the full
        newest-`max_len` window and each with one position left out."""
        windows = [np.asarray(h)[-self.module.max_len :] for h in histories]
        if any(len(w) == 0 for w in windows):
            raise DataError("An explained history is empty; pass at least one item the model knows.")
        window_times = [None] * len(windows)
        if times is not None:
            window_times = [np.asarray(t, dtype=np.float64)[-len(w) :] for t, w in zip(times, windows, strict=True)]
        rows = [row for window in windows for row in _with_each_left_out(window)]
        row_times = None if times is None else [row for t in window_times for row in _with_each_left_out(t)]
        hidden, scores = self._forward(rows, row_times)
        found, offset = [], 0
        for window, wanted, t in zip(windows, items, window_times, strict=True):
            wanted = [int(i) for i in wanted]
            size = len(window) + 1 if len(window) > 1 else 1
            block = scores[offset : offset + size, wanted].cpu().numpy()
            # one item alone: occlusion would leave nothing to score, so it carries all the support
            contributions = block[0][None, :] - block[1:] if len(window) > 1 else np.ones((1, len(wanted)))
            found.append(
                [
                    Evidence(
                        window, i, float(block[0, c]), contributions[:, c], self._overlaps(window, i), hidden[offset], t
                    )
                    for c, i in enumerate(wanted)
                ]
            )
            offset += size
        return found

    def _overlaps(self, window: np.ndarray, item: int) -> np.ndarray:
        """`|A(j) ∩ A(item)| / |A(item)|` per window position (zeros without attributes)."""
        if not self.has_content or not self.attributes[item]:
            return np.zeros(len(window))
        own = self.attributes[item]
        return np.array([len(self.attributes[j] & own) for j in window], dtype=np.float64) / len(own)

    # ----------------------------------------------------------------- the dual-branch weight
    def weights(self, evidence: list[Evidence]) -> np.ndarray:
        """The collaborative weight w_u of each piece of evidence: the gate's, or the fixed `weighting`; 1 where the
        content branch is unavailable."""
        if not self.has_content:
            return np.ones(len(evidence))
        if self.weighting != "learned":
            return np.full(len(evidence), float(self.weighting))
        if not self.fitted:
            raise ConfigError("The explainer's gate is not trained: call explainer.fit(datamodule) first.")
        with torch.no_grad():
            hidden = torch.stack([e.hidden for e in evidence]).float().cpu()
            return torch.sigmoid(self.gate(hidden)).squeeze(-1).numpy()

    def _branch_vectors(self, evidence: list[Evidence]) -> tuple[torch.Tensor, torch.Tensor]:
        """The two branch representations per evidence: `Σ c̃_j e_j` (cited history) and `Σ β_k v_k` (attributes)."""
        table = self.module.item_embedding.weight.detach().float().cpu()
        names = sorted({name for e in evidence for name in self.attributes[e.item]})
        column = {name: c for c, name in enumerate(names)}
        carriers = torch.zeros(len(names), table.shape[0])
        for i, item_names in enumerate(self.attributes):
            for name in item_names & column.keys():
                carriers[column[name], i] = 1.0
        attribute_table = (carriers / carriers.sum(1, keepdim=True).clamp(min=1)) @ table  # v_k
        collaborative, content = [], []
        for e in evidence:
            collaborative.append(torch.from_numpy(_normalised(e.contributions)).float() @ table[e.window])
            shares = self._shares(e)
            beta = torch.tensor([shares.get(name, 0.0) for name in names])
            content.append((beta / beta.sum().clamp(min=1e-12)) @ attribute_table)
        return torch.stack(collaborative), torch.stack(content)

    def _shares(self, e: Evidence) -> dict[str, float]:
        """Attributes of the recommended item that occur in the window, with the share of positions carrying each."""
        own = self.attributes[e.item]
        counts = {name: sum(name in self.attributes[j] for j in e.window) for name in own}
        return {name: count / len(e.window) for name, count in counts.items() if count}

    def fit(self, datamodule, max_examples: int = 1024, steps: int = 300, lr: float = 1e-2, seed: int = 0):
        """Train the gate on training sequences of `datamodule` (the model's data): each example is a sampled user's
        training sequence without its last item, explaining that item; the recommender stays frozen."""
        if not self.has_content or self.weighting != "learned":
            self.fitted = True
            return self
        train = datamodule.split.train
        rng = np.random.default_rng(seed)
        rows = np.flatnonzero(train.lengths >= 2)
        rows = rng.choice(rows, size=min(max_examples, len(rows)), replace=False)
        if len(rows) < 2:
            raise DataError("Fitting the explainer needs at least two training sequences of two or more items.")
        starts, ends = train.indptr[rows], train.indptr[rows + 1]
        histories = [train.items[s : e - 1] for s, e in zip(starts, ends, strict=True)]
        targets = [[int(train.items[e - 1])] for e in ends]
        times = None
        if getattr(self.module, "uses_time", False):
            times = [train.times[s : e - 1] for s, e in zip(starts, ends, strict=True)]
        evidence = [found[0] for found in self.evidence(histories, targets, times)]
        self._train_gate(evidence, steps, lr, seed)
        return self

    def _train_gate(self, evidence: list[Evidence], steps: int, lr: float, seed: int) -> None:
        """Maximise InfoNCE between target embeddings and explanation representations, in full-batch steps."""
        torch.manual_seed(seed)
        collaborative, content = (F.normalize(v, dim=-1) for v in self._branch_vectors(evidence))
        hidden = torch.stack([e.hidden for e in evidence]).float().cpu()
        targets = torch.tensor([e.item for e in evidence])
        keys = F.normalize(self.module.item_embedding.weight.detach().float().cpu()[targets], dim=-1)
        same = (targets[:, None] == targets[None, :]) & ~torch.eye(len(targets), dtype=torch.bool)
        optimizer = torch.optim.Adam(self.gate.parameters(), lr=lr)
        self.losses = []  # the InfoNCE loss of every step: its fall is the bound's rise
        for _ in range(steps):
            w = torch.sigmoid(self.gate(hidden))
            explanation = F.normalize(w * collaborative + (1 - w) * content, dim=-1)
            logits = (explanation @ keys.T / self.temperature).masked_fill(same, float("-inf"))
            loss = F.cross_entropy(logits, torch.arange(len(targets)))
            self.losses.append(loss.item())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        self.fitted = True

    # ----------------------------------------------------------------- explanations
    def compose(self, evidence: list[Evidence], weights: np.ndarray | None = None) -> list[Explanation]:
        """Explanations from evidence and collaborative weights (default: `weights(evidence)`)."""
        weights = self.weights(evidence) if weights is None else weights
        return [self._compose_one(e, float(w)) for e, w in zip(evidence, weights, strict=True)]

    def _compose_one(self, e: Evidence, w: float) -> Explanation:
        mixed = w * _normalised(e.contributions) + (1 - w) * _normalised(e.overlaps)
        per_item: dict[int, float] = {}
        for j, value in zip(e.window.tolist(), mixed.tolist(), strict=True):
            per_item[j] = per_item.get(j, 0.0) + value
        cited = sorted((j for j in per_item if per_item[j] > 0), key=lambda j: -per_item[j])[: self.cite]
        attributes, attribute_weights = None, []
        if self.has_content:
            shares = sorted(self._shares(e).items(), key=lambda kv: (-kv[1], kv[0]))[: self.cite_attributes]
            attributes, attribute_weights = [n for n, _ in shares], [s for _, s in shares]
        return Explanation(cited, [per_item[j] for j in cited], attributes, attribute_weights, w)

    def explain(
        self, histories: list[np.ndarray], items: list[Sequence[int]], times: list[np.ndarray] | None = None
    ) -> list[list[Explanation]]:
        """Explanations of item indices `items[b]` for index history `histories[b]`."""
        found = self.evidence(histories, items, times)
        flat = self.compose([e for row in found for e in row])
        out, offset = [], 0
        for row in found:
            out.append(flat[offset : offset + len(row)])
            offset += len(row)
        return out

    def in_words(self, explanation: Explanation) -> dict:
        """An explanation with titles (or raw IDs) for items and names for attributes."""
        vocab, titles = self.module.vocab, self.module.item_titles
        raw = vocab.decode(explanation.items) if explanation.items else []
        named = [titles.get(str(r), r) for r in raw]
        words = {
            "because_you_interacted_with": [
                (n, round(w, 4)) for n, w in zip(named, explanation.item_weights, strict=True)
            ],
            "shared_attributes": None,
            "collaborative_weight": round(explanation.collaborative_weight, 4),
        }
        if explanation.attributes is None:
            words["content_branch"] = CONTENT_UNAVAILABLE
        else:
            pairs = zip(explanation.attributes, explanation.attribute_weights, strict=True)
            words["shared_attributes"] = [(n, round(w, 4)) for n, w in pairs]
        return words

    def annotate(self, histories, results: list[list[dict]], timestamps=None, unknown: str = "raise") -> None:
        """Add an `explanation` (in words) to every entry of `recommend`'s results for raw-ID `histories`."""
        encoded, times = self.module.encode_inputs(histories, timestamps, unknown)
        items = [self.module.vocab.encode([entry["item_id"] for entry in row]) for row in results]
        for row, explanations in zip(results, self.explain(encoded, items, times), strict=True):
            for entry, explanation in zip(row, explanations, strict=True):
                entry["explanation"] = self.in_words(explanation)


def describe(words: dict) -> str:
    """One line of an explanation in words, as `seqrec recommend ... explain=true` prints it."""
    cited = ", ".join(f"{name} ({weight:.2f})" for name, weight in words["because_you_interacted_with"]) or "none"
    if words["shared_attributes"] is None:
        content = words.get("content_branch", CONTENT_UNAVAILABLE)
    else:
        content = ", ".join(f"{name} ({weight:.0%} of your history)" for name, weight in words["shared_attributes"])
    content = content or "no attribute with your history"
    return f"because you interacted with {cited}; shares {content}; w={words['collaborative_weight']:.2f}"


# --------------------------------------------------------------------- quality metrics (defined in the README)
def attribute_precision(explainer: Explainer, evidence: list[Evidence], explanations: list[Explanation]) -> dict:
    """Mean share of cited attributes that the recommended item has and the history (window) has, over
    explanations citing any (`precision`), and the share of explanations that cite one (`coverage`)."""
    shares = []
    for e, x in zip(evidence, explanations, strict=True):
        if x.attributes:
            in_history = frozenset().union(*(explainer.attributes[j] for j in e.window))
            linked = explainer.attributes[e.item] & in_history
            shares.append(sum(name in linked for name in x.attributes) / len(x.attributes))
    return {"precision": float(np.mean(shares)) if shares else None, "coverage": len(shares) / max(len(evidence), 1)}


def faithfulness(
    explainer: Explainer,
    evidence: list[Evidence],
    explanations: list[Explanation],
    seen: list[np.ndarray],
    draws: int = 3,
    seed: int = 0,
) -> dict:
    """Mean drop of the item's score and rise of its rank when every position of the cited history items leaves
    the window, against leaving out as many random positions (`draws` draws each). Ranks are over the catalog with
    the user's other `seen` items masked as `recommend` masks them; pairs whose removal would empty the window are
    skipped and counted. `per_pair` holds each kept pair's index and cited drops, for paired comparisons."""
    rng = np.random.default_rng(seed)
    rows, times, kept = [], [], []
    for b, (e, x) in enumerate(zip(evidence, explanations, strict=True)):
        cited = np.isin(e.window, x.items)
        if not cited.any() or cited.all():
            continue
        kept.append(b)
        kept_positions = [np.arange(len(e.window)), np.flatnonzero(~cited)]
        for _ in range(draws):
            drop = rng.choice(len(e.window), size=int(cited.sum()), replace=False)
            kept_positions.append(np.delete(np.arange(len(e.window)), drop))
        rows += [e.window[k] for k in kept_positions]
        times += [None if e.times is None else e.times[k] for k in kept_positions]
    if not kept:
        return {"pairs": 0, "skipped": len(evidence)}
    _, scores = explainer._forward(rows, None if times[0] is None else times)
    per = 2 + draws
    drops = {"cited": [], "random": []}
    rises = {"cited": [], "random": []}
    for n, b in enumerate(kept):
        block = scores[n * per : (n + 1) * per].clone()
        item = evidence[b].item
        others = np.asarray(seen[b])
        block[:, torch.as_tensor(others[others != item])] = float("-inf")
        score = block[:, item]
        rank = (block > score[:, None]).sum(1).float() + 1
        drops["cited"].append(float(score[0] - score[1]))
        drops["random"].append(float((score[0] - score[2:]).mean()))
        rises["cited"].append(float(rank[1] - rank[0]))
        rises["random"].append(float((rank[2:] - rank[0]).mean()))
    return {
        "score_drop_cited": float(np.mean(drops["cited"])),
        "score_drop_random": float(np.mean(drops["random"])),
        "rank_rise_cited": float(np.mean(rises["cited"])),
        "rank_rise_random": float(np.mean(rises["random"])),
        "pairs": len(kept),
        "skipped": len(evidence) - len(kept),
        "per_pair": {"index": kept, "score_drop_cited": drops["cited"], "rank_rise_cited": rises["cited"]},
    }


def personalisation(users: Sequence, evidence: list[Evidence], explanations: list[Explanation], cap: int = 100) -> dict:
    """Over pairs of different users recommended the same item (at most `cap` pairs per item, in order): the share
    whose explanations differ (cited items and attributes as sets) and the share whose cited attributes differ."""
    groups: dict[int, list[int]] = {}
    for b, e in enumerate(evidence):
        groups.setdefault(e.item, []).append(b)
    differ, attributes_differ = [], []
    for members in groups.values():
        pairs = [(a, b) for n, a in enumerate(members) for b in members[n + 1 :] if users[a] != users[b]][:cap]
        for a, b in pairs:
            x, y = explanations[a], explanations[b]
            differ.append(set(x.items) != set(y.items) or set(x.attributes or ()) != set(y.attributes or ()))
            attributes_differ.append(set(x.attributes or ()) != set(y.attributes or ()))
    if not differ:
        return {"pairs": 0}
    return {
        "differ": float(np.mean(differ)),
        "attributes_differ": float(np.mean(attributes_differ)),
        "pairs": len(differ),
    }
