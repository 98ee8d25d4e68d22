"""`SeqRecDataModule`: raw data -> filters -> vocabulary -> split -> pre-padded tensors -> batches."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from lightning_seqrec.batch import pad_histories  # noqa: F401  (re-exported: its old home)
from lightning_seqrec.data.datasets import (
    EvalDataset,
    LengthBucketSampler,
    TensorDictDataset,
    UnpaddedDistributedSampler,
    _identity,
    label_windows,
    train_windows,
)
from lightning_seqrec.data.filters import drop_duplicates, k_core
from lightning_seqrec.data.interactions import Interactions
from lightning_seqrec.data.label_protocol import label_split
from lightning_seqrec.data.readers import load_dataset, read_sequence_file, read_table
from lightning_seqrec.data.sequences import Sequences
from lightning_seqrec.data.splits import Split, make_split
from lightning_seqrec.data.time_units import check_time_unit, in_seconds
from lightning_seqrec.data.vocab import ItemVocab
from lightning_seqrec.errors import DataError, UnknownItemError

log = logging.getLogger(__name__)


class SeqRecDataModule(L.LightningDataModule):
    """Any interaction log as a next-item prediction task, held as tensors so batches are index slices.

    `dataset` is a registered name (`ml-latest-small`, `beauty`, `ml-1m`, ...), `"table"` for your own
    CSV/TSV/parquet file read with a `columns` mapping (and `read_table`'s `timestamps` policy and `int_ids`),
    `"sequence_file"` for any `user_id item_id item_id ...` file, or an `Interactions` object built in Python.
    `path` points at local files instead of the default location or download. The vocabulary is built
    from the items left after filtering; every split shares it. Training sequences are cut into `max_len`
    windows every `window_stride` items (default `max_len`: no overlap), all the way back to each sequence's
    start with `prefix_windows` (with `window_stride=1`: every prefix a sample); see `train_windows`. Timestamps
    become float seconds since the epoch, read in `time_unit` (`auto`, `s`, `ms`, `d`; see `data.time_units`).
    """

    def __init__(
        self,
        dataset: str | Interactions = "ml-latest-small",
        path: str | None = None,
        columns: Mapping[str, str] | None = None,
        max_len: int = 50,
        window_stride: int | None = None,
        prefix_windows: bool = False,
        split: str = "loo",
        split_kwargs: Mapping | None = None,
        dedupe: str | None = None,
        user_core: int = 0,
        item_core: int = 0,
        batch_size: int = 128,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        timestamps: str = "strict",
        int_ids: Sequence[str] = (),
        time_unit: str = "auto",
    ):
        super().__init__()
        if max_len < 1:
            raise DataError(f"max_len must be >= 1, got {max_len}.")
        if dedupe not in (None, "first", "last", "consecutive"):
            raise DataError(f"dedupe={dedupe!r} is not valid; use null, 'first', 'last' or 'consecutive'.")
        for name, size in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if size < 1:  # the DataLoader would refuse it only once training starts
                raise DataError(f"{name} must be >= 1, got {size}; pass e.g. {name}=128 (data.{name}=<n> in the CLI).")
        self.dataset, self.path = dataset, path
        # a column mapped to None (data.columns.timestamp=null) is one the log does not have
        self.columns = {ours: theirs for ours, theirs in (columns or {}).items() if theirs is not None}
        self.timestamps, self.int_ids = timestamps, list(int_ids)
        self.time_unit = check_time_unit(time_unit)  # timestamps become seconds: `lightning_seqrec.data.time_units`
        self.max_len, self.window_stride, self.prefix_windows = max_len, window_stride, prefix_windows
        self.split_name, self.split_kwargs = split, dict(split_kwargs or {})
        self.dedupe, self.user_core, self.item_core = dedupe, user_core, item_core
        self.batch_size, self.eval_batch_size, self.num_workers, self.seed = (
            batch_size,
            eval_batch_size,
            num_workers,
            seed,
        )
        self.vocab: ItemVocab | None = None
        self.split: Split | None = None
        self.interactions: Interactions | None = None

    # ----------------------------------------------------------------- preparation
    def read(self) -> Interactions:
        """The raw interactions this module is configured for."""
        if isinstance(self.dataset, Interactions):
            return self.dataset
        if self.dataset == "table":
            if self.path is None:
                raise DataError("dataset='table' needs data.path=<your .csv/.tsv/.parquet file>.")
            return read_table(self.path, columns=self.columns or None, timestamps=self.timestamps, int_ids=self.int_ids)
        if self.dataset == "sequence_file":
            if self.path is None:
                raise DataError("dataset='sequence_file' needs data.path=<your `user_id item_id item_id ...` file>.")
            return read_sequence_file(self.path, name="sequence_file")
        return load_dataset(self.dataset, path=self.path)

    def filtered(self, data: Interactions) -> Interactions:
        if self.dedupe:
            consecutive = self.dedupe == "consecutive"
            data = drop_duplicates(data, keep="first" if consecutive else self.dedupe, consecutive_only=consecutive)
        if self.user_core or self.item_core:
            data = k_core(data, self.user_core, self.item_core)
        return data

    def setup(self, stage: str | None = None) -> None:
        if self.split is not None:
            return
        data = in_seconds(self.filtered(self.read()), self.time_unit)
        self.interactions = data
        self.vocab = ItemVocab.from_ids(data.frame["item_id"])
        self.sequences = self.make_sequences(data)
        self.split = self.make_split(data)
        if len(self.split.test) == 0:
            raise DataError(f"The {self.split_name!r} split of {data.name!r} left no test users.")
        self.train_tensors = self.training_tensors()
        self.valid_dataset = EvalDataset(self.split.valid, self.max_len)
        self.test_dataset = EvalDataset(self.split.test, self.max_len)
        self._user_rows = {u: i for i, u in enumerate(self.sequences.users.tolist())}
        log.info(
            "%s: %d users, %d items, %d training windows, %d valid / %d test users",
            data.name,
            len(self.sequences),
            len(self.vocab),
            len(self.train_tensors["item_seq"]),
            len(self.split.valid),
            len(self.split.test),
        )

    def make_sequences(self, data: Interactions) -> Sequences:
        """Each user's sequence of (filtered) interactions: the users' histories, which `make_split` splits."""
        return Sequences.from_interactions(data, self.vocab)

    def make_split(self, data: Interactions) -> Split:
        """Train / validation / test parts of the prepared data (`self.sequences`), by the configured split; it
        changes nothing on the module."""
        return make_split(self.sequences, self.split_name, **self.split_kwargs)

    def training_tensors(self) -> dict[str, torch.Tensor]:
        """The padded training rows: every next item of a training sequence is a target."""
        return train_windows(self.split.train, self.max_len, self.window_stride, self.prefix_windows)

    def embedding_corpus(self) -> list[np.ndarray]:
        """Item sequences to pre-train item embeddings on (e.g. Word2Vec): the training sequences only, so the
        embeddings never see a validation or test target."""
        self._require_setup()
        return self.split.train.rows()

    # ----------------------------------------------------------------- facts the model needs
    @property
    def num_items(self) -> int:
        self._require_setup()
        return len(self.vocab)

    @property
    def has_time(self) -> bool:
        self._require_setup()
        return self.sequences.times is not None

    def item_counts(self) -> torch.Tensor:
        """Training interactions per item index (index 0 = padding, always 0): the popularity prior."""
        self._require_setup()
        return torch.from_numpy(np.bincount(self.split.train.items, minlength=self.vocab.size))

    def titles(self) -> dict:
        """Raw item ID -> title where the dataset has titles, else {}."""
        self._require_setup()
        return self.interactions.titles() or {}

    def item_attributes(self) -> list[list[str]]:
        """Attribute names of each item index (genres, categories; index 0 = padding and items without any: []),
        from `Interactions.attributes`; all empty when the dataset has no item side table."""
        self._require_setup()
        found = self.interactions.attributes()
        return [[], *(list(found.get(raw, [])) for raw in self.vocab.raw_ids)]

    def fingerprint(self) -> str:
        """sha256 of the prepared tensors: two runs trained on the same data share it."""
        self._require_setup()
        digest = hashlib.sha256()
        for array in (self.sequences.indptr, self.sequences.items, self.split.test.targets):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(repr(self.vocab.raw_ids[:1000]).encode())
        return digest.hexdigest()

    def user_history(self, user) -> list:
        """Raw item IDs of a user's whole known history (train + validation + test), oldest first."""
        start, end = self._user_span(user)
        return self.vocab.decode(self.sequences.items[start:end])

    def user_times(self, user) -> list[float] | None:
        """Timestamps of `user_history(user)`, one per item, or None when the data has no times."""
        start, end = self._user_span(user)
        return None if self.sequences.times is None else self.sequences.times[start:end].tolist()

    def _user_span(self, user) -> tuple[int, int]:
        """`[start, end)` of a raw user ID's row in `self.sequences`; an unknown user is an error naming known ones."""
        self._require_setup()
        row = self._user_rows.get(user)
        if row is None:
            try:
                row = self._user_rows.get(type(next(iter(self._user_rows)))(user))
            except (TypeError, ValueError):
                row = None
        if row is None:
            raise UnknownItemError(
                f"User {user!r} is not in {self.interactions.name!r} (after filtering). "
                f"Known users look like {list(self._user_rows)[:3]!r}; pass one of them or history=[...]."
            )
        return int(self.sequences.indptr[row]), int(self.sequences.indptr[row + 1])

    def _require_setup(self) -> None:
        if self.split is None:
            raise RuntimeError("Call datamodule.setup() first (trainer.fit does it for you).")

    # ----------------------------------------------------------------- loaders
    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.world_size > 1:
            return trainer.world_size, trainer.global_rank
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size(), torch.distributed.get_rank()
        return 1, 0

    def _loader(self, dataset, batch_size: int, sampler) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=_identity,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        self._require_setup()
        dataset = TensorDictDataset(self.train_tensors)
        world, rank = self._world()
        if world > 1:
            sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
        else:
            lengths = (self.train_tensors["item_seq"] > 0).sum(1)
            sampler = LengthBucketSampler(lengths, self.batch_size, seed=self.seed)
        return self._loader(dataset, self.batch_size, sampler)

    def _eval_loader(self, dataset: EvalDataset) -> DataLoader:
        world, rank = self._world()
        sampler = UnpaddedDistributedSampler(dataset, world, rank) if world > 1 else None
        return self._loader(dataset, self.eval_batch_size, sampler)

    def val_dataloader(self) -> DataLoader:
        self._require_setup()
        return self._eval_loader(self.valid_dataset)

    def test_dataloader(self) -> DataLoader:
        self._require_setup()
        return self._eval_loader(self.test_dataset)


def _dataset_module(name: str, dataset: str, doc: str, **defaults) -> type[SeqRecDataModule]:
    """A SeqRecDataModule subclass bound to one public dataset and its usual settings."""

    def __init__(self, path: str | None = None, **kwargs):
        SeqRecDataModule.__init__(self, dataset=dataset, path=path, **{**defaults, **kwargs})

    return type(name, (SeqRecDataModule,), {"__init__": __init__, "__doc__": doc})


MovieLensLatestSmall = _dataset_module(
    "MovieLensLatestSmall",
    "ml-latest-small",
    "MovieLens latest-small (embedded in the package; the default), 5-core filtered: movies rated by fewer "
    "than 5 users are dropped, which keeps 3,650 of 9,724 movies and 90% of the ratings.",
    user_core=5,
    item_core=5,
)
MovieLens1M = _dataset_module("MovieLens1M", "ml-1m", "MovieLens-1M (`ratings.dat` or `ml-1m.txt`).", max_len=200)
MovieLens100K = _dataset_module("MovieLens100K", "ml-100k", "MovieLens-100k (`u.data` or RecBole `.inter`).")
AmazonBeauty = _dataset_module("AmazonBeauty", "beauty", "Amazon Beauty 5-core, S3-Rec preprocessing.")
AmazonSports = _dataset_module("AmazonSports", "sports", "Amazon Sports & Outdoors 5-core, S3-Rec preprocessing.")
AmazonToys = _dataset_module("AmazonToys", "toys", "Amazon Toys & Games 5-core, S3-Rec preprocessing.")
Yelp = _dataset_module("Yelp", "yelp", "Yelp 2019, S3-Rec preprocessing.")
RetailRocket = _dataset_module(
    "RetailRocket", "retailrocket", "RetailRocket events (views, add-to-cart, transactions).", max_len=100
)


class LabelPredictionDataModule(SeqRecDataModule):
    """The IKEA protocol (`lightning_seqrec.data.label_protocol`): input events (views) predict a label event
    (add-to-cart), after a chronological cut whose first part only trains item embeddings (`embedding_corpus`),
    with train / validation / test by disjoint users.

    `input_events` / `label_events` name values of the log's `event` column; set both to null for a log
    without event types, where an evaluated user's last item (`eval_labels="last"`) is the label.
    Users' histories (`user_history`) are their input events.
    """

    def __init__(
        self,
        dataset: str | Interactions = "retailrocket",
        input_events: Sequence[str] | None = ("view",),
        label_events: Sequence[str] | None = ("addtocart",),
        embedding_cutoff: float = 0.5,
        valid_frac: float = 0.1,
        test_frac: float = 0.1,
        eval_labels: str = "all",
        max_len: int = 100,
        **kwargs,
    ):
        super().__init__(dataset=dataset, max_len=max_len, split="label", **kwargs)
        self.input_events = list(input_events) if input_events is not None else None
        self.label_events = list(label_events) if label_events is not None else None
        self.protocol = {
            "embedding_cutoff": embedding_cutoff,
            "valid_frac": valid_frac,
            "test_frac": test_frac,
            "eval_labels": eval_labels,
            "seed": self.seed,
        }

    def make_sequences(self, data: Interactions) -> Sequences:
        """Users' histories are their input events."""
        if self.input_events is not None and "event" in data.frame.columns:
            data = data.replace(data.frame[data.frame["event"].isin(self.input_events)])
        return Sequences.from_interactions(data, self.vocab)

    def make_split(self, data: Interactions) -> Split:
        return label_split(data, self.vocab, self.input_events, self.label_events, **self.protocol)

    def training_tensors(self) -> dict[str, torch.Tensor]:
        if self.split.train_stream is not None:
            return train_windows(self.split.train_stream, self.max_len, self.window_stride, self.prefix_windows)
        return label_windows(self.split.train, self.max_len)

    def embedding_corpus(self) -> list[np.ndarray]:
        self._require_setup()
        return self.split.embedding_corpus.rows()

    def item_counts(self) -> torch.Tensor:
        """Training labels per item index: the popularity prior of what is predicted."""
        self._require_setup()
        split = self.split
        labels = split.train_stream.items if split.train_stream is not None else split.train.targets
        return torch.from_numpy(np.bincount(labels, minlength=self.vocab.size))


class XMRec(SeqRecDataModule):
    """XMRec Electronics markets; users are market-qualified. `markets` (e.g. `["de"]`, `+data.markets=[de]` on the
    command line) keeps only those markets' rows, so one market trains and ranks over its own catalog."""

    def __init__(self, path: str | None = None, markets: Sequence[str] | None = None, **kwargs):
        super().__init__(dataset="xmrec", path=path, **kwargs)
        self.markets = list(markets) if markets is not None else None

    def read(self) -> Interactions:
        data = super().read()
        if self.markets is None:
            return data
        present = set(data.frame["market"].unique())
        missing = sorted(set(self.markets) - present)
        if missing:
            raise DataError(f"XMRec market(s) {missing} are not in the data; data.markets may hold {sorted(present)}.")
        return data.replace(data.frame[data.frame["market"].isin(self.markets)])
