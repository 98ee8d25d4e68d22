"""Contrastive auxiliary objectives on sequence representations: in-batch InfoNCE, CL4SRec, supervised
contrastive with same-target positives (DuoRec) and the weighted relative contrastive loss (RCL).

The contrasted representation is the backbone's last hidden state `h = model.encode(batch)` (`ModelView`), the
vector the model scores items with, with no projection head: as in DuoRec and RCL the loss shapes the very
space used for ranking (a SimCLR-style head would let it act on a space the scorer never sees). Similarities
are cosines / τ (`normalize=False`: dot products / τ). Mix with the main loss as `L = L_rec + λ·L_aux`,
λ = the objective's `weight`. Negatives are the other entries of the step (anchors and encoded views, not
gathered across DDP ranks); entries with the anchor's target are never its negatives.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn

from lightning_seqrec.errors import ConfigError
from lightning_seqrec.objectives.augment import random_augment
from lightning_seqrec.objectives.base import Objective
from lightning_seqrec.objectives.mining import WeakPositiveMiner
from lightning_seqrec.objectives.positives import StrongPositiveIndex, WeakPositiveTable
from lightning_seqrec.objectives.view import ModelView
from lightning_seqrec.objectives.windows import encode_windows, input_windows


# ----------------------------------------------------------------- shared math
def contrastive_logits(
    anchors: torch.Tensor, candidates: torch.Tensor, temperature: float, normalize: bool = False
) -> torch.Tensor:
    """`[B, M]` similarities / τ in float32 (dot products, or cosines when `normalize`)."""
    anchors, candidates = anchors.float(), candidates.float()
    if normalize:
        anchors, candidates = F.normalize(anchors, dim=-1), F.normalize(candidates, dim=-1)
    return anchors @ candidates.T / temperature


def pair_losses(logits: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """`[B, M]`: the InfoNCE loss of every candidate c taken as anchor u's positive against u's negatives,
    `-log(exp(z_uc) / (exp(z_uc) + Σ_{n ∈ negatives(u)} exp(z_un))) = softplus(logsumexp_neg(z_u) - z_uc)`;
    valid for the columns c that are not among u's negatives.

    Masked entries are filled with the most negative float (not -inf), so a row without negatives gives a
    zero loss with finite gradients.
    """
    masked = logits.masked_fill(~negatives, torch.finfo(logits.dtype).min)
    return F.softplus(masked.logsumexp(dim=1, keepdim=True) - logits)


def info_nce_loss(
    view1: torch.Tensor,
    view2: torch.Tensor,
    temperature: float,
    targets: torch.Tensor | None = None,
    normalize: bool = False,
) -> torch.Tensor:
    """Symmetric InfoNCE (NT-Xent) over 2B views: row i's positive is its other view, its negatives are the
    other 2B - 2 views, minus those whose target equals row i's when `targets [B]` is given; mean over 2B."""
    views = torch.cat([view1, view2])
    n = len(views)
    logits = contrastive_logits(views, views, temperature, normalize)
    index = torch.arange(n, device=views.device)
    partner = (index + len(view1)) % n
    negatives = (index[:, None] != index[None, :]) & (partner[:, None] != index[None, :])
    if targets is not None:
        both = torch.cat([targets, targets])
        negatives &= both[:, None] != both[None, :]
    return pair_losses(logits, negatives).gather(1, partner[:, None]).mean()


def relative_contrastive_loss(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    anchor_ids: torch.Tensor,
    anchor_targets: torch.Tensor,
    candidate_ids: torch.Tensor,
    candidate_targets: torch.Tensor,
    strong: torch.Tensor,
    weak: torch.Tensor,
    similarity: torch.Tensor,
    temperature: float,
    normalize: bool = False,
) -> torch.Tensor:
    """Weighted relative contrastive loss (RCL, Eq. 17), averaged over the B anchors.

    With z_uc = h_u·h_c/τ over candidates c (anchors and encoded positives of the step), the negatives of u are
    N_u = {c : id_c ≠ id_u, target_c ≠ target_u} and its strong set SP_u = {c : id_c ≠ id_u, target_c = target_u}:

    - pair loss  L_pair(u, a) = -log(exp(z_ua) / (exp(z_ua) + Σ_{c ∈ N_u} exp(z_uc)))
    - boundary   L_max(u) = max_{a ∈ SP_u} L_pair(u, a)
    - weighted   L_w(u, b) = -log(s_ub·exp(z_ub) / (s_ub·exp(z_ub) + Σ_{c ∈ N_u} s_uc·exp(z_uc)))
    - total      (1/B)·[Σ_{u: a_u} L_pair(u, a_u) + Σ_{u: b_u} (max(L_w(u, b_u), L_max(u)) if SP_u else L_w(u, b_u))]

    `strong [B]` / `weak [B]` are the candidate columns of each anchor's sampled strong / weak positive (-1:
    none); `similarity [B, M]` holds s_uc >= 0. Where the weighted weak loss is already below the hardest strong
    pair's loss, the max sends the gradient through L_max instead, pulling the strong positives closer.
    """
    logits = contrastive_logits(anchors, candidates, temperature, normalize)
    same = anchor_targets[:, None] == candidate_targets[None, :]
    other = anchor_ids[:, None] != candidate_ids[None, :]
    negatives = other & ~same
    pair = pair_losses(logits, negatives)
    rows = torch.arange(len(anchors), device=logits.device)
    has_strong, has_weak = strong >= 0, weak >= 0
    strong_term = torch.where(has_strong, pair[rows, strong.clamp(min=0)], 0.0)
    boundary = pair.masked_fill(~(other & same), float("-inf")).amax(dim=1)
    weighted = logits + similarity.float().clamp(min=1e-30).log()
    not_weak = torch.arange(logits.shape[1], device=logits.device)[None, :] != weak[:, None]
    weak_pair = pair_losses(weighted, negatives & not_weak & (similarity > 0))[rows, weak.clamp(min=0)]
    weak_term = torch.where((other & same).any(dim=1), torch.maximum(weak_pair, boundary), weak_pair)
    return (strong_term + torch.where(has_weak, weak_term, 0.0)).sum() / len(anchors)


# ----------------------------------------------------------------- sampling
def _numpy_rng() -> np.random.Generator:
    """A numpy generator drawn from torch's, which `SeqRecModule` seeds per (seed, step, rank)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))


# ----------------------------------------------------------------- objectives
class ContrastiveObjective(Objective):
    """Shared settings of the contrastive objectives: temperature τ and cosine (default) or dot similarity.

    Cosine with τ = 0.1 is the default because with dot products and τ = 1 (DuoRec's setting) SASRec with CE on
    Beauty stalls at validation NDCG@10 ~0.009 (measured for both RCL and supervised contrastive).
    """

    sparse_item_grad = True  # items enter only through the module's embedding lookup

    def __init__(self, weight: float = 0.1, temperature: float = 0.1, normalize: bool = True):
        super().__init__(weight)
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}.")
        self.temperature, self.normalize = temperature, normalize


class InBatchInfoNCE(ContrastiveObjective):
    """InfoNCE between two dropout views of each sequence (the training pass and a second pass), in-batch
    negatives. `mask_same_target` drops same-target sequences from the negatives (False: the plain loss)."""

    def __init__(
        self, weight: float = 0.1, temperature: float = 0.1, normalize: bool = True, mask_same_target: bool = True
    ):
        super().__init__(weight, temperature, normalize)
        self.mask_same_target = mask_same_target

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        targets = batch["target_seq"][:, -1] if self.mask_same_target else None
        second = model.encode(batch)
        return info_nce_loss(outputs["hidden"][:, -1], second, self.temperature, targets, self.normalize)


class CL4SRec(ContrastiveObjective):
    """CL4SRec (Xie et al., ICDE 2022): InfoNCE between two augmented views of each sequence (crop, mask or
    reorder per view, see `augment.py`), in-batch negatives. Ratios default to the CoSeRec / ICLRec settings.
    Views carry the batch's `time_seq` (when it has one), each timestamp moved with its item."""

    def __init__(
        self,
        weight: float = 0.1,
        temperature: float = 0.1,
        normalize: bool = True,
        crop_ratio: float = 0.2,
        mask_ratio: float = 0.7,
        reorder_ratio: float = 0.2,
        mask_same_target: bool = True,
    ):
        super().__init__(weight, temperature, normalize)
        self.ratios = (crop_ratio, mask_ratio, reorder_ratio)
        self.mask_same_target = mask_same_target

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        item_seq, time_seq = batch["item_seq"], batch.get("time_seq")
        if time_seq is None:
            views = {"item_seq": torch.cat([random_augment(item_seq, *self.ratios) for _ in range(2)])}
        else:
            pairs = [random_augment(item_seq, *self.ratios, time_seq=time_seq) for _ in range(2)]
            views = {"item_seq": torch.cat([p[0] for p in pairs]), "time_seq": torch.cat([p[1] for p in pairs])}
        first, second = model.encode(views).split(len(item_seq))
        targets = batch["target_seq"][:, -1] if self.mask_same_target else None
        return info_nce_loss(first, second, self.temperature, targets, self.normalize)


class WindowContrastiveObjective(ContrastiveObjective):
    """A contrastive objective whose positives are other training windows, fetched by window id from the
    datamodule's train tensors (`setup`) and encoded by the same module in the same step."""

    def __init__(self, weight: float = 0.1, temperature: float = 0.1, normalize: bool = True):
        super().__init__(weight, temperature, normalize)
        self.windows: dict[str, torch.Tensor] | None = None
        self.targets: np.ndarray | None = None
        self.strong: StrongPositiveIndex | None = None

    def setup(self, datamodule) -> None:
        """Keep the training windows and index them by target (the strong positives)."""
        self.windows = input_windows(datamodule.train_tensors)
        self.targets = datamodule.train_tensors["target_seq"][:, -1].numpy()
        self.strong = StrongPositiveIndex(self.targets)

    def anchor_ids(self, batch: dict) -> np.ndarray:
        if self.strong is None:
            raise ConfigError(f"{type(self).__name__} needs its training data: call setup(datamodule) first.")
        if "index" not in batch:
            raise ConfigError(f"{type(self).__name__} needs the window ids of a training batch (batch['index']).")
        return batch["index"].cpu().numpy()


class SupervisedContrastive(WindowContrastiveObjective):
    """Supervised contrastive learning with same-target positives, as DuoRec (Qiu et al., WSDM 2022).

    The anchor is a second dropout pass of the sequence; its positive is another training sequence with the
    same target item (one sampled per step; where none exists, a further dropout pass of the sequence
    itself, as DuoRec falls back to). Symmetric InfoNCE over the 2B views; views sharing the anchor's target
    are not negatives (DuoRec does not mask them).
    """

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        ids = self.anchor_ids(batch)
        positives = self.strong.sample(ids, _numpy_rng())
        positives = np.where(positives >= 0, positives, ids)
        views = encode_windows(model, self.windows, torch.from_numpy(np.concatenate([ids, positives])))
        anchor, positive = views.split(len(ids))
        targets = torch.from_numpy(self.targets[ids]).to(anchor.device)
        return info_nce_loss(anchor, positive, self.temperature, targets, self.normalize)


class RelativeContrastive(WindowContrastiveObjective):
    """Weighted relative contrastive loss (RCL; Wang et al., CIKM 2024) on the training pass's representations.

    Per anchor u and step: a strong positive a (another training sequence with u's target, sampled
    uniformly) and a weak positive b (sampled ∝ similarity from the top α of sequences with another target,
    mined by `WeakPositiveMiner`) are encoded with the model; the loss is `relative_contrastive_loss`, which
    enforces sim(u, a) > sim(u, b) > sim(u, negatives). The similarity weights s_uc of the weighted term come
    from the miner's measure, for every pair in the step.

    The objective brings its miner: `configure_callbacks` returns a `WeakPositiveMiner(**mining)` (settings: method
    ngram | tfidf | embedding, n, every_n_epochs, max_neighbours, block_size, batch_size), which the module hands
    to the Trainer unless the user configured a WeakPositiveMiner already (that one is used; one miner feeds every
    RCL objective). `mining=False` brings none; without a mined table (`set_weak_positives`) only the strong term
    is used.
    """

    def __init__(
        self,
        weight: float = 0.1,
        temperature: float = 0.1,
        alpha: float = 0.05,
        normalize: bool = True,
        mining: Mapping | bool | None = None,
    ):
        super().__init__(weight, temperature, normalize)
        if not 0 < alpha <= 1:
            raise ConfigError(
                f"alpha (the top fraction of sequences that may be weak positives) must be in (0, 1], got {alpha}."
            )
        self.alpha = alpha
        if mining is True or mining is None:
            mining = {}
        self.mining = None if mining is False else dict(mining)
        if self.mining is not None:
            self.configure_callbacks()  # checks the settings now rather than when fit starts
        self.weak: WeakPositiveTable | None = None
        self.similarity = None

    def configure_callbacks(self) -> list:
        """A fresh `WeakPositiveMiner` with this objective's `mining` settings ([] with `mining=False`)."""
        if self.mining is None:
            return []
        try:
            return [WeakPositiveMiner(**self.mining)]
        except TypeError as err:
            allowed = ", ".join(p for p in inspect.signature(WeakPositiveMiner).parameters)
            raise ConfigError(f"RelativeContrastive mining={self.mining}: {err}; the settings are {allowed}.") from err

    def set_weak_positives(self, table: WeakPositiveTable, similarity) -> None:
        """Use a mined weak-positive table; `similarity.pairs(rows, cols)` weighs every pair of window ids."""
        self.weak, self.similarity = table, similarity

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        ids = self.anchor_ids(batch)
        rng = _numpy_rng()
        strong = self.strong.sample(ids, rng)
        if self.weak is None:
            rank_zero_warn(
                "RelativeContrastive has no weak-positive table: only its strong term is used. Fit it with a Trainer, "
                "where it brings its WeakPositiveMiner (unless mining=false), or call set_weak_positives()."
            )
        weak = self.weak.sample(ids, rng)[0] if self.weak is not None else np.full(len(ids), -1)
        extra = np.concatenate([strong[strong >= 0], weak[weak >= 0]])
        anchors = outputs["hidden"][:, -1]
        candidates = anchors
        if len(extra):
            candidates = torch.cat([anchors, encode_windows(model, self.windows, torch.from_numpy(extra))])
        candidate_ids = np.concatenate([ids, extra])
        strong_col = np.where(strong >= 0, len(ids) + np.cumsum(strong >= 0) - 1, -1)
        weak_col = np.where(weak >= 0, len(ids) + (strong >= 0).sum() + np.cumsum(weak >= 0) - 1, -1)
        if self.similarity is not None:
            similarity = self.similarity.pairs(ids, candidate_ids)
        else:
            similarity = np.zeros((len(ids), len(candidate_ids)), dtype=np.float32)
        arrays = (ids, self.targets[ids], candidate_ids, self.targets[candidate_ids], strong_col, weak_col, similarity)
        tensors = [torch.as_tensor(a, device=anchors.device) for a in arrays]
        return relative_contrastive_loss(anchors, candidates, *tensors, self.temperature, self.normalize)
