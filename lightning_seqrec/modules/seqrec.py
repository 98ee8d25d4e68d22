"""`SeqRecModule`: item embeddings + a registered backbone + weighted objectives + full-ranking evaluation."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lightning_seqrec.backbones import create_backbone
from lightning_seqrec.batch import TIME_SEQ, check_timestamps, inference_batch, trim_padding
from lightning_seqrec.data.vocab import ItemVocab
from lightning_seqrec.errors import ConfigError, DataError, SeqRecError
from lightning_seqrec.inputs import create_input_encoder
from lightning_seqrec.integrity import check_vocab_size, integrity_record, verify_integrity
from lightning_seqrec.metrics import RankingEvaluator
from lightning_seqrec.modules.traced_step import traced_step
from lightning_seqrec.objectives import FullCrossEntropy, Objective
from lightning_seqrec.objectives.view import ModelView, score_items
from lightning_seqrec.optim import SparseAwareAdamW

log = logging.getLogger(__name__)


class SeqRecModule(L.LightningModule):
    """The one LightningModule: any backbone, any mix of objectives, evaluation by full ranking.

    Scores are dot products (or cosines, `scoring="cosine"`) of the backbone's last hidden state with the (tied)
    item embeddings, which may start from `pretrained_embeddings` and stay frozen (`freeze_embeddings`). The
    padding item is never ranked; items the user has already seen are masked with -inf when `mask_seen`
    (the S3-Rec protocol; RecBole's protocol does not mask). `recommend()` speaks raw item IDs and goes
    through exactly the same scoring path as evaluation.
    """

    def __init__(
        self,
        num_items: int,
        backbone: str = "sasrec",
        backbone_kwargs: Mapping | None = None,
        input_encoder: str | None = None,
        input_encoder_kwargs: Mapping | None = None,
        embedding_dim: int = 64,
        max_len: int = 50,
        objectives: Mapping[str, Objective] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        mask_seen: bool = True,
        eval_ks: Sequence[int] = (5, 10, 20),
        seed: int = 0,
        scoring: str = "dot",
        pretrained_embeddings: torch.Tensor | None = None,
        freeze_embeddings: bool = False,
        sparse_item_grad: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["objectives", "pretrained_embeddings"])
        if scoring not in ("dot", "cosine"):
            raise ConfigError(f"scoring={scoring!r} is not valid; use 'dot' or 'cosine'.")
        if max_len < 1:  # else it fails only in the first forward pass
            raise ConfigError(
                f"max_len must be >= 1 (the newest items the model reads), got {max_len}; pass e.g. max_len=50 "
                "(model.max_len=<n> on the command line, where it defaults to data.max_len)."
            )
        self.scoring = scoring
        self.num_items, self.max_len, self.mask_seen = num_items, max_len, mask_seen
        self.lr, self.weight_decay, self.eval_ks, self.seed = lr, weight_decay, tuple(eval_ks), seed
        self.architecture = {
            "num_items": num_items,
            "backbone": backbone,
            "backbone_kwargs": dict(backbone_kwargs or {}),
            "embedding_dim": embedding_dim,
            "max_len": max_len,
            "mask_seen": mask_seen,
            "scoring": scoring,
            "freeze_embeddings": freeze_embeddings,
        }
        if input_encoder is not None:  # recorded only when used, so older records stay as they were
            self.architecture["input_encoder"] = input_encoder
            self.architecture["input_encoder_kwargs"] = dict(input_encoder_kwargs or {})
        self.item_embedding = nn.Embedding(num_items + 1, embedding_dim, padding_idx=0, sparse=sparse_item_grad)
        nn.init.normal_(self.item_embedding.weight, std=0.02)  # small scale: N(0,1) makes CE crawl
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
            if pretrained_embeddings is not None:
                if tuple(pretrained_embeddings.shape) != (num_items + 1, embedding_dim):
                    raise ConfigError(
                        f"pretrained_embeddings must be [num_items + 1, embedding_dim] = "
                        f"[{num_items + 1}, {embedding_dim}], got {list(pretrained_embeddings.shape)}."
                    )
                self.item_embedding.weight.copy_(pretrained_embeddings)
        self.item_embedding.weight.requires_grad_(not freeze_embeddings)
        self.backbone = create_backbone(backbone, **self.architecture["backbone_kwargs"])
        self.input_encoder = (
            None
            if input_encoder is None
            else create_input_encoder(input_encoder, **{"embedding_dim": embedding_dim, **(input_encoder_kwargs or {})})
        )
        self.num_interests = int(getattr(self.backbone, "num_interests", 1))  # H vectors per hidden state
        objectives = dict(objectives) if objectives is not None else {"ce": FullCrossEntropy()}
        if not objectives:
            raise ConfigError("A module needs at least one objective; use objective=ce for full cross-entropy.")
        bad = {k: type(v).__name__ for k, v in objectives.items() if not isinstance(v, Objective)}
        if bad:
            raise ConfigError(f"Objectives must subclass lightning_seqrec.objectives.Objective; got {bad}.")
        dense = [k for k, v in objectives.items() if not v.sparse_item_grad]
        if sparse_item_grad and dense:
            raise ConfigError(
                f"sparse_item_grad=true needs objectives that touch only some item rows (sampled softmax, BCE, "
                f"contrastive); {dense} use the whole item table. Use objective=sampled_softmax or "
                "sparse_item_grad=false."
            )
        self.objectives = nn.ModuleDict(objectives)
        self.vocab: ItemVocab | None = None
        self.item_titles: dict = {}
        self.data_config: dict | None = None  # the data config this module was trained on (set by the CLI)
        self.evaluators = nn.ModuleDict(
            {
                "val": RankingEvaluator(num_items, self.eval_ks),
                "test": RankingEvaluator(num_items, self.eval_ks),
            }
        )

    # ----------------------------------------------------------------- forward and scoring
    @property
    def uses_time(self) -> bool:
        """Whether the backbone or the input encoder reads `time_seq` (its class sets `uses_time = True`): then every
        batch, inference included, must carry timestamps."""
        return any(bool(getattr(part, "uses_time", False)) for part in (self.backbone, self.input_encoder))

    def _time_reader(self) -> str:
        if self.input_encoder is not None and getattr(self.input_encoder, "uses_time", False):
            return f"Input encoder {self.architecture['input_encoder']!r}"
        return f"Backbone {self.architecture['backbone']!r}"

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Backbone hidden states `[B, L, d]` and the real-item mask `[B, L]` of a batch (see `lightning_seqrec.batch`
        for its keys)."""
        item_seq = batch["item_seq"]
        if TIME_SEQ not in batch and self.uses_time:
            raise ConfigError(
                f"{self._time_reader()} reads timestamps, but this batch has no {TIME_SEQ!r}: "
                "train it on data with a timestamp column, and pass timestamps= when recommending."
            )
        mask = item_seq > 0
        embeddings = self.item_embedding(item_seq)
        if self.input_encoder is not None:
            embeddings = self.input_encoder(embeddings, mask, batch)
        hidden = self.backbone(embeddings, mask, batch)
        return {"hidden": hidden, "mask": mask}

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """Embeddings of item indices `items`, for objectives that touch a few rows of the table: with
        `sparse_item_grad` their gradient is sparse, so `SparseAwareAdamW` updates only those rows."""
        return F.embedding(items, self.item_embedding.weight, sparse=self.item_embedding.sparse)

    def score_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of hidden states `[..., H·d]` against every item `[..., N+1]` (dot products, or cosines when
        `scoring="cosine"`; the best of H interests: `lightning_seqrec.objectives.view.score_items`, the rule
        objectives train by); padding gets -inf."""
        scores = score_items(hidden, self.item_embedding.weight, self.scoring, interests=self.num_interests)
        scores[..., 0] = float("-inf")
        return scores

    def score(self, batch: Mapping[str, torch.Tensor], mask_seen: bool | None = None) -> torch.Tensor:
        """Next-item scores `[B, N+1]` from the newest position; seen items (`seen_rows`/`seen_items` in the
        batch) get -inf when `mask_seen` (default: the module's setting)."""
        hidden = self(trim_padding(batch))["hidden"][:, -1]
        scores = self.score_hidden(hidden)
        if (self.mask_seen if mask_seen is None else mask_seen) and "seen_rows" in batch:
            scores[batch["seen_rows"], batch["seen_items"]] = float("-inf")
        return scores

    # ----------------------------------------------------------------- lightning hooks
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            self.attach_data(datamodule)

    def attach_data(self, datamodule) -> None:
        """Take the vocabulary, titles and popularity statistics of the data this module trains or evaluates
        on (Lightning calls it in `setup`); refuses data whose catalog differs from the model's."""
        if datamodule.num_items != self.num_items:
            raise ConfigError(
                f"The model was built for {self.num_items} items but the data has {datamodule.num_items}; "
                "build the model from this datamodule (model num_items=dm.num_items) or fine-tune instead."
            )
        if self.vocab is None:
            self.vocab = datamodule.vocab
            self.item_titles = {str(k): str(v) for k, v in datamodule.titles().items()}
        elif self.vocab != datamodule.vocab:
            raise ConfigError("The data's item vocabulary differs from the model's; fine-tune to change catalogs.")
        counts = datamodule.item_counts()
        for name in self.evaluators:
            self.evaluators[name] = RankingEvaluator(self.num_items, self.eval_ks, item_counts=counts)
        for objective in self.objectives.values():
            objective.setup(datamodule)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        # Dropout and negative sampling draw from a seed that depends on (seed, step, rank) only, so a run
        # resumed from a checkpoint repeats exactly the draws of one that never stopped.
        torch.manual_seed(self.seed * 1_000_003 + self.global_step * 1009 + self.global_rank)

    def training_step(self, batch, batch_idx):
        batch = trim_padding(batch)
        outputs = self(batch)
        total = 0.0
        model = ModelView(self)  # what objectives see of the module
        for name, objective in self.objectives.items():
            loss = objective(outputs, batch, model)
            self.log(f"train/loss/{name}", loss, batch_size=len(batch["item_seq"]))
            total = total + objective.weight * loss
        self.log("train/loss", total, prog_bar=True, batch_size=len(batch["item_seq"]))
        return total

    def _eval_step(self, batch, stage: str) -> dict[str, torch.Tensor]:
        """Score and rank a batch once; the ranks and top-k lists go to callbacks as the step's outputs."""
        ranks, topk_items = self.evaluators[stage].update(self.score(batch), batch["target"])
        return {"ranks": ranks, "topk_items": topk_items}

    def _eval_epoch_end(self, stage: str) -> None:
        metrics = self.evaluators[stage].compute()
        self.evaluators[stage].reset()
        for name, value in metrics.items():
            self.log(f"{stage}/{name}", value.float(), prog_bar=name == "ndcg@10")

    def validation_step(self, batch, batch_idx):
        return self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx):
        return self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_callbacks(self) -> list[L.Callback]:
        """The callbacks the objectives bring (`Objective.configure_callbacks`, e.g. RCL's `WeakPositiveMiner`),
        one per type (the first objective's). A callback of that type already in the Trainer (configured by the
        user, or brought by an earlier fit or test) is kept and the objective's is not added; a configured one
        with other settings is named in a warning."""
        present = list(self.trainer.callbacks) if self._trainer is not None else []
        brought: dict[type, L.Callback] = {}
        for name, objective in self.objectives.items():
            for callback in objective.configure_callbacks():
                kind = type(callback)
                configured = next((c for c in present if isinstance(c, kind)), None)
                if configured is not None:
                    settings = getattr(callback, "settings", None)
                    if callable(settings) and settings() != configured.settings():
                        rank_zero_warn(
                            f"Objective {name!r} brings a {kind.__name__} with {settings()}, but the Trainer's "
                            f"callbacks already hold one with {configured.settings()}; that one is used."
                        )
                    continue
                brought.setdefault(kind, callback)
        return list(brought.values())

    def configure_optimizers(self):
        # Identical to AdamW for dense gradients; rows of a sparse item table are updated lazily.
        return SparseAwareAdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        vocab = self.vocab.to_dict() if self.vocab is not None else None
        checkpoint["seqrec"] = {
            "architecture": self.architecture,
            "vocab": vocab,
            "item_titles": self.item_titles,
            "data_config": self.data_config,
            "integrity": integrity_record(self.architecture, vocab) if vocab is not None else None,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restore the vocabulary, titles and data config, refusing a vocabulary that does not fit the item table,
        differs from the data's on resume, or (in checkpoints that record them) does not match its hashes."""
        state = checkpoint.get("seqrec") or {}
        if state.get("vocab") is not None:
            try:
                vocab = ItemVocab.from_dict(state["vocab"])
            except SeqRecError as err:
                raise ConfigError(f"the checkpoint's vocabulary is malformed: {err}") from err
            check_vocab_size(vocab, self.item_embedding.num_embeddings, "its vocabulary", "its weights")
            if state.get("integrity") is not None:
                verify_integrity(state["integrity"], state.get("architecture") or {}, state["vocab"])
            if self.vocab is not None and self.vocab != vocab:
                raise ConfigError(
                    "the checkpoint was trained on another item vocabulary than this data's; resume on the data it "
                    "was trained on, or fine-tune (seqrec finetune zoo=<ckpt>) to change catalogs."
                )
            self.vocab = vocab
            self.item_titles = state.get("item_titles") or {}
        self.data_config = state.get("data_config")

    # ----------------------------------------------------------------- inference in raw IDs
    def _require_vocab(self) -> ItemVocab:
        if self.vocab is None:
            raise ConfigError("This model has no item vocabulary yet: train it on a datamodule or load a checkpoint.")
        return self.vocab

    def encode_histories(self, histories: Sequence[Sequence], unknown: str = "raise") -> list[np.ndarray]:
        """Index arrays of raw-ID histories. IDs not in the vocabulary raise (`unknown="raise"`) or are dropped and
        logged (`"drop"`); a history with no known item left is an error, as the model needs one to condition on."""
        vocab = self._require_vocab()
        if unknown not in ("raise", "drop"):
            raise ConfigError(f"unknown={unknown!r} is not valid; use 'raise' (the default) or 'drop' (unknown=drop).")
        example = "pass a list of histories of raw item IDs, e.g. [[1, 2, 3]]"
        if isinstance(histories, (str, bytes)) or not isinstance(histories, Iterable):
            raise ConfigError(f"histories={histories!r} is not a list of histories; {example}.")
        histories = list(histories)
        if not histories:
            raise ConfigError(f"Got no histories; {example}.")
        encoded = []
        for row, history in enumerate(histories):
            if isinstance(history, (str, bytes)) or not isinstance(history, Iterable):
                raise ConfigError(
                    f"History {row} is {history!r}, not a list of raw item IDs; pass a list of histories, e.g. "
                    f"{[histories]!r} for one history."
                )
            history = list(history)
            indices = vocab.encode(history, unknown=unknown)
            if len(indices) < len(history):
                shown = ", ".join(repr(raw) for raw in history if raw not in vocab)
                if len(indices) == 0:
                    raise DataError(
                        f"history {row} has no item in this model's vocabulary once unknown='drop' dropped {shown}; "
                        "pass at least one ID from the training data."
                    )
                log.warning("history %d: dropped item ID(s) not in this model's vocabulary: %s", row, shown)
            encoded.append(indices)
        return encoded

    def encode_inputs(
        self, histories: Sequence[Sequence], timestamps: Sequence[Sequence] | None = None, unknown: str = "raise"
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Index arrays of raw-ID histories (as `encode_histories`) and float64 arrays of their `timestamps` (one
        number per item of each history; those of items that `unknown="drop"` leaves out go too), or None without
        timestamps, which a backbone that reads time refuses."""
        if timestamps is None and self.uses_time:
            raise ConfigError(
                f"{self._time_reader()} of this model reads timestamps: pass timestamps=[[t, ...], ...] with one per "
                "item of each history (times=[...] with history=[...] in `seqrec recommend`)."
            )
        if timestamps is not None and isinstance(histories, Iterable) and not isinstance(histories, (str, bytes)):
            histories = [
                h if isinstance(h, (str, bytes)) or not isinstance(h, Iterable) else list(h) for h in histories
            ]
        encoded = self.encode_histories(histories, unknown)
        times = None
        if timestamps is not None:
            vocab = self._require_vocab()
            times = check_timestamps(timestamps, [len(h) for h in histories])
            times = [
                t[np.array([raw in vocab for raw in h], dtype=bool)] for t, h in zip(times, histories, strict=True)
            ]
        return encoded, times

    def history_batch(
        self, histories: Sequence[Sequence], timestamps: Sequence[Sequence] | None = None, unknown: str = "raise"
    ) -> dict[str, torch.Tensor]:
        """The inference batch (`lightning_seqrec.batch.inference_batch`, on this module's device) of raw-ID histories
        (oldest first) and their timestamps, as `encode_inputs` checks them."""
        encoded, times = self.encode_inputs(histories, timestamps, unknown)
        return inference_batch(encoded, self.max_len, times, device=self.device)

    @torch.no_grad()
    def score_histories(
        self,
        histories: Sequence[Sequence],
        exclude_seen: bool = True,
        unknown: str = "raise",
        timestamps: Sequence[Sequence] | None = None,
    ) -> torch.Tensor:
        """Scores `[B, N+1]` for raw-ID histories (oldest first), truncated to the newest `max_len` items; `unknown`
        as in `encode_histories`, `timestamps` as in `history_batch`."""
        batch = self.history_batch(histories, timestamps, unknown)
        with evaluating(self):
            return self.score(batch, mask_seen=exclude_seen)

    def recommend(
        self,
        histories: Sequence[Sequence],
        k: int = 10,
        exclude_seen: bool = True,
        unknown: str = "raise",
        timestamps: Sequence[Sequence] | None = None,
        explain=False,
    ) -> list[list[dict]]:
        """Top-`k` raw item IDs with scores (and titles when known) for each history of raw item IDs; item IDs not
        in the vocabulary raise, or with `unknown="drop"` are left out (and logged). `timestamps` (one per item of
        each history) reach the backbone as `time_seq`; a backbone that reads time needs them. `explain=True` adds
        an `explanation` to each entry from the `lightning_seqrec.explain.Explainer` attached to this module (or
        from the explainer passed as `explain`)."""
        k = check_top_k(k)
        vocab = self._require_vocab()
        scores = self.score_histories(histories, exclude_seen=exclude_seen, unknown=unknown, timestamps=timestamps)
        top = torch.topk(scores, min(k, self.num_items), dim=1)
        results = []
        for values, indices in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            ranked = [(i, s) for i, s in zip(indices, values, strict=True) if s != float("-inf")]
            raw = vocab.decode([i for i, _ in ranked])
            results.append([self._describe(r, s) for r, (_, s) in zip(raw, ranked, strict=True)])
        if explain:
            explainer = getattr(self, "explainer", None) if explain is True else explain
            if explainer is None:
                raise ConfigError(
                    "explain=True needs an explainer: build one with lightning_seqrec.explain.Explainer(module, "
                    "datamodule.item_attributes()).fit(datamodule), or pass explain=<an Explainer>."
                )
            explainer.annotate(histories, results, timestamps=timestamps, unknown=unknown)
        return results

    @property
    def is_recurrent(self) -> bool:
        """Whether every part that reads the sequence (backbone, input encoder) folds events by `init_state`/`step`."""
        parts = [self.backbone] + ([self.input_encoder] if self.input_encoder is not None else [])
        return all(hasattr(part, "init_state") and hasattr(part, "step") for part in parts)

    def _require_recurrent(self) -> None:
        if not self.is_recurrent:
            kind, name = (
                ("backbone", self.architecture["backbone"])
                if not hasattr(self.backbone, "step")
                else ("input encoder", self.architecture["input_encoder"])
            )
            raise ConfigError(
                f"The {kind} {name!r} has no recurrent step (init_state / step); score whole histories with "
                "recommend() or score_histories() instead."
            )

    def initial_state(self):
        """The recurrent state of a user with no event yet: (input encoder's, backbone's), for a batch of one."""
        self._require_recurrent()
        encoder = self.input_encoder
        return (None if encoder is None else encoder.init_state(1), self.backbone.init_state(1))

    @torch.no_grad()
    def step_hidden(self, state, index: int, timestamp: float | None = None) -> tuple[object, torch.Tensor]:
        """Fold item index `index` (at `timestamp`) into a user's recurrent `state` (None: a new user): the new state
        and the hidden state `[1, H·d]` after it, which `score_hidden` scores or a retrieval index is searched with.
        Each step costs the same whatever the history's length."""
        self._require_recurrent()
        state = self.initial_state() if state is None else state
        if self.uses_time and timestamp is None:
            raise ConfigError(f"{self._time_reader()} reads timestamps: pass the event's timestamp.")
        with evaluating(self):
            encoder_state, backbone_state = state
            time = None
            if timestamp is not None:
                time = torch.tensor([float(timestamp)], dtype=torch.float64, device=self.device)
            embedding = self.item_embedding(torch.tensor([int(index)], device=self.device))
            if self.input_encoder is not None:
                encoder_state, embedding = self.input_encoder.step(encoder_state, embedding, time)
            backbone_state, hidden = traced_step(self.backbone, backbone_state, embedding, time)
        return (encoder_state, backbone_state), hidden

    @torch.no_grad()
    def step_state(self, state, raw_item_id, timestamp: float | None = None) -> tuple[object, torch.Tensor]:
        """Fold one new event (a raw item ID) of a user into their recurrent `state` (None: a new user), for backbones
        (and input encoders) with the optional `init_state` / `step` interface: the new state and the next-item
        scores `[1, N+1]` after it (seen items are not masked). Stepping through a history scores as
        `score_histories` does on it, while it fits in `max_len`."""
        self._require_recurrent()  # before the vocabulary: a non-recurrent model is the first thing to say
        index = int(self.encode_histories([[raw_item_id]])[0][0])
        state, hidden = self.step_hidden(state, index, timestamp)
        return state, self.score_hidden(hidden)

    def _describe(self, raw_id, score: float) -> dict:
        entry = {"item_id": raw_id, "score": score}
        if str(raw_id) in self.item_titles:
            entry["title"] = self.item_titles[str(raw_id)]
        return entry


def check_top_k(k) -> int:
    """`k` of a top-k request as an int, refusing anything but a whole number >= 1 (a string or a float would fail
    deep in torch, and 0 would silently return nothing)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k={k!r} is not a whole number >= 1; pass k=<how many items to return>, e.g. k=10.")
    return int(k)


def _any_training(module: nn.Module) -> bool:
    """Whether `module` or any submodule is in training mode; walks the children directly, without the memo set of
    `modules()`, which hashes every torchmetrics metric on the way (a fifth of a served query's time)."""
    return module.training or any(_any_training(child) for child in module._modules.values() if child is not None)


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """`module` in eval mode (dropout off) for the block, then back in the mode it was in: inference in the middle
    of training must not leave a training module in eval mode, nor the reverse."""
    if not _any_training(module):  # already in eval mode: skip two more walks of every submodule
        yield module
        return
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
