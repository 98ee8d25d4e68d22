"""The data path: readers -> Interactions -> filters -> ItemVocab -> splits -> tensors -> DataModule."""

from lightning_seqrec.data.datamodule import (
    AmazonBeauty,
    AmazonSports,
    AmazonToys,
    MovieLens1M,
    MovieLens100K,
    MovieLensLatestSmall,
    RetailRocket,
    SeqRecDataModule,
    XMRec,
    Yelp,
    pad_histories,
)
from lightning_seqrec.data.filters import drop_duplicates, k_core
from lightning_seqrec.data.interactions import Interactions
from lightning_seqrec.data.readers import (
    DATASETS,
    load_dataset,
    read_amazon,
    read_movielens_1m,
    read_movielens_100k,
    read_movielens_latest_small,
    read_retailrocket,
    read_retailrocket_sessions,
    read_sequence_file,
    read_table,
    read_xmrec,
    read_yelp,
)
from lightning_seqrec.data.splits import Split, leave_one_out, make_split, temporal, user_holdout
from lightning_seqrec.data.vocab import ItemVocab

__all__ = [
    "DATASETS",
    "AmazonBeauty",
    "AmazonSports",
    "AmazonToys",
    "Interactions",
    "ItemVocab",
    "MovieLens100K",
    "MovieLens1M",
    "MovieLensLatestSmall",
    "RetailRocket",
    "SeqRecDataModule",
    "Split",
    "XMRec",
    "Yelp",
    "drop_duplicates",
    "k_core",
    "leave_one_out",
    "load_dataset",
    "make_split",
    "pad_histories",
    "read_amazon",
    "read_movielens_100k",
    "read_movielens_1m",
    "read_movielens_latest_small",
    "read_retailrocket",
    "read_retailrocket_sessions",
    "read_sequence_file",
    "read_table",
    "read_xmrec",
    "read_yelp",
    "temporal",
    "user_holdout",
]
