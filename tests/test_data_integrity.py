"""Data integrity: invalid timestamps, ID types, short rows and the sequence-file config fail loudly or by rule."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from lightning_seqrec.data import Interactions, ItemVocab, SeqRecDataModule
from lightning_seqrec.data.readers import read_sequence_file, read_table
from lightning_seqrec.data.sequences import Sequences
from lightning_seqrec.data.splits import temporal
from lightning_seqrec.data.stored_config import datamodule_from_record
from lightning_seqrec.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def raises(call, *fragments: str, one_line: bool = True) -> str:
    """Run `call`, expect a DataError holding every fragment, on one line unless it quotes a file's line."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert not one_line or "\n" not in message, message
    return message


# --- 1. timestamps: missing, text, negative ---


def test_blank_and_nan_timestamps_are_refused_with_their_lines(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,ts\nu1,a,1\nu1,b,\nu1,c,nan\nu1,d,4\n")
    columns = {"user_id": "user", "item_id": "item", "timestamp": "ts"}
    raises(
        lambda: read_table(path, columns=columns),
        str(path),
        "2 row(s)",
        "'ts'",
        "line 3 is empty",
        "line 4 is empty",
        "timestamps='drop_invalid'",
    )
    df = pd.DataFrame({"user_id": ["u1"] * 3, "item_id": ["a", "b", "c"], "timestamp": [1.0, float("nan"), 3.0]})
    raises(lambda: Interactions.from_frame(df), "1 row(s)", "index 1 is empty")
    raises(lambda: read_table(df), "index 1 is empty")


def test_missing_datetimes_are_refused_not_turned_into_the_oldest_event():
    df = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "timestamp": pd.to_datetime(["2017-01-01", None])})
    raises(lambda: read_table(df), "index 1 is empty")


def test_text_timestamps_are_refused_or_parsed_as_iso_dates(tmp_path):
    text = "user_id,item_id,timestamp\nu1,a,2021-01-01 10:00\nu1,b,yesterday\nu1,c,2021-01-02\n"
    path = write(tmp_path / "log.csv", text)
    raises(lambda: read_table(path), "3 row(s)", "line 2 is '2021-01-01 10:00'", "timestamps='parse_dates'")
    raises(
        lambda: read_table(path, timestamps="parse_dates"),
        "1 row(s)",
        "line 3 is 'yesterday'",
        "ISO 8601",
    )
    dates = write(tmp_path / "dates.csv", "user_id,item_id,timestamp\nu1,a,2021-01-01 10:00\nu1,b,2021-01-02\n")
    parsed = read_table(dates, timestamps="parse_dates").frame["timestamp"]
    assert parsed.to_list() == [1609495200, 1609545600] and parsed.dtype == "int64"
    df = pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["a", "b"], "timestamp": ["2021-01-02", "tomorrow"]})
    raises(lambda: Interactions(df), "index 1 is 'tomorrow'")
    raises(lambda: read_table(dates, timestamps="sometimes"), "timestamps='sometimes'", "'strict'")


def test_drop_invalid_drops_the_rows_and_logs_how_many(tmp_path, caplog):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu1,a,1\nu1,b,\nu1,c,later\nu1,d,-5\nu1,e,2\n")
    with caplog.at_level(logging.WARNING):
        data = read_table(path, timestamps="drop_invalid")
    assert data.frame["item_id"].to_list() == ["a", "e"] and data.frame["timestamp"].to_list() == [1, 2]
    assert "dropped 3 of 5 row(s)" in caplog.text and "line 3 is empty" in caplog.text


def test_negative_timestamps_are_refused_not_reordered(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu1,a,10\nu1,b,-1\nu1,c,20\n")
    raises(lambda: read_table(path), "line 3 is -1", "negative")
    df = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "timestamp": [5, -3]})
    raises(lambda: Interactions(df), "index 1 is -3", "negative")


# --- 2. numeric-looking IDs stay the strings they were written as ---


def test_numeric_looking_ids_of_a_text_file_stay_distinct_strings(tmp_path):
    items = ["007", "7", "07", "7.0", "1e1", "10"]
    rows = "".join(f"{u},{item},{t}\n" for u in ("001", "1") for t, item in enumerate(items))
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\n" + rows)
    data = read_table(path)
    assert data.frame["item_id"].to_list() == items * 2 and data.frame["user_id"].to_list()[::6] == ["001", "1"]
    dm = SeqRecDataModule(data, max_len=4)
    dm.setup()
    assert dm.vocab.raw_ids == items
    assert ItemVocab.from_dict(dm.vocab.to_dict()).raw_ids == items  # as a checkpoint stores it
    assert dm.user_history("001") == items and dm.vocab.decode(dm.vocab.encode(["007", "7"])) == ["007", "7"]


def test_int_ids_reads_integers_and_refuses_ids_that_would_merge(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\n1,10,1\n1,-2,2\n2,10,3\n")
    data = read_table(path, int_ids=["user_id", "item_id"])
    assert data.frame["item_id"].to_list() == [10, -2, 10] and data.frame["user_id"].dtype == "int64"
    assert read_table(path, int_ids=["item_id"]).frame["user_id"].to_list() == ["1", "1", "2"]
    merging = write(tmp_path / "merge.csv", "user_id,item_id,timestamp\n1,7,1\n1,007,2\n")
    raises(lambda: read_table(merging, int_ids=["item_id"]), str(merging), "line 3", "'007'", "int_ids", one_line=False)
    raises(lambda: read_table(path, int_ids=["rating"]), "int_ids", "'rating'")


def test_a_dataframe_column_mixing_int_and_str_ids_is_refused():
    df = pd.DataFrame({"user_id": ["u", "u", "u"], "item_id": pd.Series([7, "007", "x"], dtype=object)})
    raises(lambda: Interactions(df), "'item_id'", "mixes", "astype(str)")


def test_sequence_file_ids_that_are_one_integer_written_twice_are_refused(tmp_path):
    path = write(tmp_path / "seq.txt", "1 7 8 9\n2 007 8\n")
    raises(lambda: read_sequence_file(path), str(path), "'007'", "'7'", one_line=False)


# --- 3. a row with too few fields ---


def test_a_row_with_too_few_fields_names_its_file_line_and_text(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu1,a,1\nu1,b\nu1,c,3\n")
    message = raises(lambda: read_table(path), str(path), "line 3", "'u1,b'", "2 field(s)", "3", one_line=False)
    assert "timestamp" not in message.split("line 3")[0]  # it is not reported as an empty timestamp
    tsv = write(tmp_path / "log.tsv", "user_id\titem_id\ttimestamp\nu1\ta\t1\nu1\n")
    raises(lambda: read_table(tsv), "line 3", "1 field(s)", one_line=False)
    sniffed = write(tmp_path / "log.txt", "user_id;item_id;timestamp\nu1;a;1\nu1;b\n")
    raises(lambda: read_table(sniffed), "line 3", "'u1;b'", one_line=False)
    explicit = write(tmp_path / "blank.csv", "user_id,item_id,timestamp\nu1,a,1\nu1,b,\n")
    raises(lambda: read_table(explicit), "line 3 is empty")  # all fields there, the timestamp is blank


# --- 4. data=sequence_file ---


def test_sequence_file_config_trains_any_sequence_file_under_its_own_label(tmp_path):
    path = write(tmp_path / "mine.txt", "1 5 6 7 8\n2 6 7 8\n3 5 8 6 7\n")
    with initialize_config_module("lightning_seqrec.configs", version_base="1.3"):
        cfg = compose("train", overrides=["data=sequence_file", f"data.path={path}", "data.max_len=4"])
        missing = compose("train", overrides=["data=sequence_file"])
    stored = OmegaConf.to_container(cfg.data, resolve=True)  # what a checkpoint records
    for dm in (instantiate(cfg.data), datamodule_from_record(stored, "a checkpoint")):
        dm.setup()
        assert dm.interactions.name == "sequence_file" and dm.interactions.meta["source"] == [str(path)]
        assert dm.vocab.raw_ids == [5, 6, 7, 8] and len(dm.split.test) == 3
        assert dm.user_history(2) == [6, 7, 8]
    with pytest.raises(MissingMandatoryValue):
        instantiate(missing.data)
    raises(lambda: SeqRecDataModule("sequence_file").setup(), "needs data.path=")


def test_table_config_passes_the_timestamp_policy_and_int_ids(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu1,7,2021-01-01\nu1,8,2021-01-02\nu1,9,2021-01-03\n")
    overrides = ["data=table", f"data.path={path}", "data.timestamps=parse_dates", "data.int_ids=[item_id]"]
    with initialize_config_module("lightning_seqrec.configs", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    dm = instantiate(cfg.data)
    dm.setup()
    assert dm.vocab.raw_ids == [7, 8, 9] and dm.interactions.frame["timestamp"].to_list()[0] == 1609459200


def test_a_split_part_without_users_has_no_rows():
    data = Interactions(pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [0, 1]}))
    vocab = ItemVocab.from_ids(data.frame["item_id"])
    split = temporal(Sequences.from_interactions(data, vocab), valid_cutoff=0.5, test_cutoff=0.8)
    assert len(split.valid) == 0 and split.valid.history.rows() == [] and len(split.test.history.rows()) == 1
