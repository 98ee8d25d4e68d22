"""Dataset readers: exact frames from small files, malformed input, the shared public data, load_dataset."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import require_shared
from pandas.testing import assert_frame_equal

from lightning_seqrec.data import readers
from lightning_seqrec.data.readers import (
    DATASETS,
    EMBEDDED_ML_LATEST_SMALL,
    ML_GENRES_100K,
    RemoteFile,
    find_dataset,
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
from lightning_seqrec.errors import DataError

shared = require_shared


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path`, gzip-compressed when the name ends in .gz."""
    data = text.encode(encoding)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def frame(**columns) -> pd.DataFrame:
    """An expected frame: int lists become int64, float lists float64, str lists the default string dtype."""
    return pd.DataFrame({name: pd.Series(values) for name, values in columns.items()})


def raises(call, *fragments: str) -> str:
    """Run `call`, expect a DataError, and check that its message holds every fragment."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    return message


# --- sequence files ---


@pytest.mark.parametrize("name", ["seq.txt", "seq.txt.gz"])
def test_sequence_file_plain_and_gzip(tmp_path, name):
    data = read_sequence_file(write(tmp_path / name, "1 10 11 12\n2 11 13\n\n3 12 10\n"), name="toy")
    expected = frame(user_id=[1, 1, 1, 2, 2, 3, 3], item_id=[10, 11, 12, 11, 13, 12, 10])
    assert_frame_equal(data.frame, expected)
    assert (data.name, data.has_time, data.items) == ("toy", False, None)
    assert data.meta == {"source": [str(tmp_path / name)]}


def test_sequence_file_with_aligned_times_and_attributes(tmp_path):
    items = write(tmp_path / "X.txt", "1 10 11\n2 12\n")
    times = write(tmp_path / "X_time.txt.gz", "1 100 200 \n2 300\n")  # trailing blank as in the Yelp file
    attributes = write(tmp_path / "X_item2attributes.json", json.dumps({"10": [1, 2], "11": [], "12": [3]}))
    data = read_sequence_file(items, times, attributes, name="x")
    assert_frame_equal(data.frame, frame(user_id=[1, 1, 2], item_id=[10, 11, 12], timestamp=[100, 200, 300]))
    assert data.items["attributes"].to_dict() == {10: [1, 2], 11: [], 12: [3]}
    assert data.items.index.dtype == np.int64 and data.items.index.name == "item_id"
    assert data.meta["time_unit"] == "s"


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("1 10 11\n2 10 x1\n", ["line 2", "item id 'x1' is not an integer", "offending line: '2 10 x1'"]),
        ("1 10 1.5\n", ["line 1", "item id '1.5' is not an integer"]),
        ("1 10\n\nu3 10\n", ["line 3", "user id 'u3' is not an integer", "offending line: 'u3 10'"]),
        ("1 10\n2\n", ["line 2", "user '2' has no item ids", "offending line: '2'"]),
        ("", ["the file is empty"]),
        ("\n \n", ["the file is empty"]),
    ],
)
def test_sequence_file_malformed(tmp_path, text, fragments):
    path = write(tmp_path / "bad.txt", text)
    raises(lambda: read_sequence_file(path), str(path), *fragments, "fix: every line must be `user_id item_id")


def test_undecodable_files(tmp_path):
    fake = tmp_path / "seq.txt.gz"
    fake.write_bytes(b"1 10 11\n")
    raises(
        lambda: read_sequence_file(fake),
        str(fake),
        "cannot be read (Not a gzipped file",
        "must be complete gzip",
    )
    fake_csv = tmp_path / "log.csv.gz"
    fake_csv.write_bytes(b"user_id,item_id\n1,2\n")
    raises(lambda: read_table(fake_csv), str(fake_csv), "cannot be read (Not a gzipped file")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("1 10 \xe9\n".encode("latin-1"))
    raises(
        lambda: read_sequence_file(latin),
        str(latin),
        "is not utf-8 text",
        "at byte 5",
        "re-save the file as utf-8",
    )


@pytest.mark.parametrize(
    "time_text, fragments",
    [
        ("1 5 6\n3 7\n", ["line 2", "user 3 with 1 timestamps does not match line 2 of items.txt", "'3 7'"]),
        ("1 5\n2 7\n", ["line 1", "user 1 with 1 timestamps", "(user 1 with 2 items)"]),
        ("1 5 6\n2 7\n3 8\n", ["line 3", "has more lines than items.txt (2 users)"]),
        ("1 5 6\n", ["ends after 1 users but items.txt continues at line 2 (user 2)"]),
        ("1 5 x\n2 7\n", ["line 1", "timestamp 'x' is not an integer"]),
    ],
)
def test_time_file_must_align(tmp_path, time_text, fragments):
    items = write(tmp_path / "items.txt", "1 10 11\n2 12\n")
    times = write(tmp_path / "times.txt", time_text)
    raises(lambda: read_sequence_file(items, times), str(times), *fragments, "fix: ")


@pytest.mark.parametrize(
    "content, fragments",
    [
        ('{"1": [1,}', ["line 1", "is not valid JSON", """offending line: '{"1": [1,}'"""]),
        ('{"1": "a"}', ["item '1' maps to 'a', not a list of integers"]),
        ('{"a": [1]}', ["item id 'a' is not an integer"]),
        ("[]", ["does not hold a non-empty JSON object"]),
    ],
)
def test_attribute_file_malformed(tmp_path, content, fragments):
    items = write(tmp_path / "items.txt", "1 1\n")
    attributes = write(tmp_path / "items_item2attributes.json", content)
    raises(lambda: read_sequence_file(items, attributes_path=attributes), str(attributes), *fragments, "fix: ")


def test_read_amazon_uses_the_files_beside_the_sequence_file(tmp_path):
    write(tmp_path / "Beauty.txt.gz", "1 1 2\n2 2 3\n")
    write(tmp_path / "Beauty_time.txt", "1 10 20\n2 30 40\n")
    write(tmp_path / "Beauty_item2attributes.json", '{"1": [5], "2": [6, 7], "3": []}')
    data = read_amazon("Beauty", tmp_path)
    assert data.name == "beauty"
    assert_frame_equal(data.frame, frame(user_id=[1, 1, 2, 2], item_id=[1, 2, 2, 3], timestamp=[10, 20, 30, 40]))
    assert data.items["attributes"].to_dict() == {1: [5], 2: [6, 7], 3: []}
    untimed = read_amazon("beauty", tmp_path / "Beauty.txt.gz", with_time=False)
    assert_frame_equal(untimed.frame, frame(user_id=[1, 1, 2, 2], item_id=[1, 2, 2, 3]))
    raises(lambda: read_amazon("books", tmp_path), "Unknown Amazon dataset 'books'", "'beauty'", "'toys'")
    raises(lambda: read_amazon("toys", tmp_path), "holds no Amazon Toys_and_Games sequence file", "Beauty.txt.gz")


def test_read_yelp_variants(tmp_path):
    write(tmp_path / "Yelp.txt", "1 1 2\n")
    write(tmp_path / "Yelp_ticoserec_item.txt", "7 3 4\n")
    data = read_yelp(tmp_path)
    assert data.name == "yelp" and not data.has_time and data.items is None
    assert_frame_equal(data.frame, frame(user_id=[1, 1], item_id=[1, 2]))
    raises(lambda: read_yelp(tmp_path, variant="ticoserec"), "lacks Yelp_ticoserec_time.txt")
    write(tmp_path / "Yelp_ticoserec_time.txt", "7 1546456309 1546551759\n")
    timed = read_yelp(tmp_path, variant="ticoserec")
    assert timed.name == "yelp-ticoserec"
    assert_frame_equal(timed.frame, frame(user_id=[7, 7], item_id=[3, 4], timestamp=[1546456309, 1546551759]))
    raises(lambda: read_yelp(tmp_path, variant="yelp2022"), "Unknown Yelp variant 'yelp2022'", "'ticoserec'")


# --- MovieLens ---

RATINGS_DAT = "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n"
MOVIES_DAT = "10::Café (1995)::Comedy|Drama\n20::Heat (1995)::Action\n"
ML1M_RATINGS = frame(
    user_id=[1, 1, 2],
    item_id=[10, 20, 10],
    timestamp=[978300760, 978302109, 978301968],
    rating=[5.0, 3.0, 4.0],
)


def test_ml1m_ratings_dat_with_latin1_movies(tmp_path):
    write(tmp_path / "ratings.dat.gz", RATINGS_DAT)
    write(tmp_path / "movies.dat", MOVIES_DAT, encoding="latin-1")
    data = read_movielens_1m(tmp_path)
    assert_frame_equal(data.frame, ML1M_RATINGS)
    assert data.titles() == {10: "Café (1995)", 20: "Heat (1995)"}
    assert data.items["category"].to_dict() == {10: "Comedy|Drama", 20: "Action"}
    assert data.meta["time_unit"] == "s"


def test_ml1m_source_choice(tmp_path):
    write(tmp_path / "ml-1m.txt", "1 10 20\n2 10\n3 30\n")
    write(tmp_path / "ratings_users_0001-2999.dat", RATINGS_DAT)
    auto = read_movielens_1m(tmp_path)  # no complete ratings.dat: the full sequence file wins over a partial one
    assert_frame_equal(auto.frame, frame(user_id=[1, 1, 2, 3], item_id=[10, 20, 10, 30]))
    assert_frame_equal(read_movielens_1m(tmp_path, source="ratings").frame, ML1M_RATINGS)
    write(tmp_path / "ratings.dat", "9::10::1::5\n")
    assert_frame_equal(read_movielens_1m(tmp_path).frame, frame(user_id=[9], item_id=[10], timestamp=[5], rating=[1.0]))
    assert_frame_equal(read_movielens_1m(tmp_path, source="sequence").frame, auto.frame)
    assert len(read_movielens_1m(tmp_path / "ratings_users_0001-2999.dat")) == 3  # a file goes by its name
    raises(lambda: read_movielens_1m(tmp_path, source="both"), "Unknown MovieLens-1M source 'both'")


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("1::10::5::1\n1::11::3\n", ["line 2", "column 'timestamp' is empty", "offending line: '1::11::3'"]),
        ("1::10::5::1\n1::11::3::4::5\n", ["line 2", "more fields than the first one", "'1::11::3::4::5'"]),
        ("1:10:5:1\n", ["line 1", "does not have the expected number of fields", "'1:10:5:1'"]),
        ("1::10:x:5::1\n", ["line 1", "does not have 4 fields separated by '::'"]),
        ("1::10::5::1\n\n2::a::5::1\n", ["line 3", "column 'item_id' is 'a', expected an integer"]),
        ("1::10::x::1\n", ["line 1", "column 'rating' is 'x', expected a number"]),
        ("", ["the file is empty"]),
    ],
)
def test_ml1m_ratings_dat_malformed(tmp_path, text, fragments):
    path = write(tmp_path / "ratings.dat", text)
    raises(lambda: read_movielens_1m(path), str(path), *fragments, "UserID::MovieID::Rating::Timestamp")


def u_item_line(item: int, title: str, genres: set[str]) -> str:
    flags = "|".join("1" if genre in genres else "0" for genre in ML_GENRES_100K)
    return f"{item}|{title}|01-Jan-1997||http://imdb/{item}|{flags}\n"


ML100K_RATINGS = frame(
    user_id=[196, 186, 22],
    item_id=[242, 302, 377],
    timestamp=[881250949, 891717742, 878887116],
    rating=[3.0, 3.0, 1.0],
)


def test_ml100k_grouplens_files(tmp_path):
    write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
    u_item = u_item_line(242, "Kolya (1996)", {"Comedy"}) + u_item_line(
        302, "L.A. Confidential (1997)", {"Crime", "Film-Noir", "Mystery", "Thriller"}
    )
    write(tmp_path / "u.item", u_item + u_item_line(377, "Café Noir (1997)", set()), encoding="latin-1")
    data = read_movielens_100k(tmp_path)
    assert_frame_equal(data.frame, ML100K_RATINGS)
    assert data.titles() == {242: "Kolya (1996)", 302: "L.A. Confidential (1997)", 377: "Café Noir (1997)"}
    assert data.items["category"].to_list() == ["Comedy", "Crime|Film-Noir|Mystery|Thriller", ""]


def test_ml100k_recbole_files(tmp_path):
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    rows = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
    write(tmp_path / "ml-100k.inter.gz", header + rows)
    item_header = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    items = "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
    write(tmp_path / "ml-100k.item.gz", item_header + items)
    data = read_movielens_100k(tmp_path)
    assert_frame_equal(data.frame, ML100K_RATINGS)
    assert data.items["category"].to_dict() == {242: "Comedy", 302: "Crime|Film-Noir|Mystery|Thriller"}
    assert data.titles() == {242: "Kolya", 302: "L.A. Confidential"}


def test_ml100k_malformed(tmp_path):
    short = write(tmp_path / "a" / "u.data", "196\t242\t3\n")
    raises(
        lambda: read_movielens_100k(short),
        "line 1",
        "expected number of fields",
        "four integers separated by tabs",
    )
    bad = write(tmp_path / "b" / "u.data", "196\t242\t3\t1\n186\tx\t3\t1\n")
    raises(
        lambda: read_movielens_100k(bad),
        "line 2",
        "column 'item_id' is 'x'",
        "offending line: '186\\tx\\t3\\t1'",
    )
    inter = write(
        tmp_path / "c" / "ml-100k.inter",
        "user_id:token\titem:token\trating:float\ttimestamp:float\n1\t2\t3\t4\n",
    )
    raises(lambda: read_movielens_100k(inter), "lacks column(s) ['item_id']", "'item'", "typed header")
    raises(lambda: read_movielens_100k(tmp_path), "holds no MovieLens-100k ratings", "u.data", "*.inter")


def test_ml_latest_small_folder(tmp_path):
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,2.5,964981247\n")
    movies = "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
    movies += '11,"American President, The (1995)",Comedy\n'
    write(tmp_path / "movies.csv.gz", movies)
    data = read_movielens_latest_small(tmp_path)
    expected = frame(user_id=[1, 1], item_id=[1, 11], timestamp=[964982703, 964981247], rating=[4.0, 2.5])
    assert_frame_equal(data.frame, expected)
    assert data.titles() == {1: "Toy Story (1995)", 11: "American President, The (1995)"}
    assert data.items["category"].to_dict() == {1: "Adventure|Animation", 11: "Comedy"}


def test_ml_latest_small_embedded_default():
    data = read_movielens_latest_small()
    assert (len(data), data.num_users, data.num_items, len(data.items)) == (100836, 610, 9724, 9742)
    assert data.titles()[1] == "Toy Story (1995)"
    assert data.items.loc[1, "category"] == "Adventure|Animation|Children|Comedy|Fantasy"
    assert data.meta["source"][0].startswith(str(EMBEDDED_ML_LATEST_SMALL))


@pytest.mark.parametrize(
    "text, fragments",
    [
        (
            "userId,movieId,rating\n1,2,3\n",
            ["lacks column(s) ['timestamp']", "it has ['userId', 'movieId', 'rating']"],
        ),
        ("userId,movieId,rating,timestamp\n1,2,3,4\n\nabc,2,3,4\n", ["line 4", "column 'user_id' is 'abc'"]),
        ("userId,movieId,rating,timestamp\n", ["has no data rows"]),
        ("", ["the file is empty"]),
    ],
)
def test_ml_latest_small_malformed(tmp_path, text, fragments):
    path = write(tmp_path / "ratings.csv", text)
    raises(
        lambda: read_movielens_latest_small(tmp_path),
        str(path),
        *fragments,
        "header userId,movieId,rating,timestamp",
    )


# --- RetailRocket, XMRec, tables ---

EVENTS_CSV = (
    "timestamp,visitorid,event,itemid,transactionid\n"
    "1433221332117,257597,view,355908,\n"
    "1433224214164,992329,transaction,248676,4000.0\n"
    "1433221999827,111016,addtocart,318965,\n"
)


def test_retailrocket_events(tmp_path):
    write(tmp_path / "events_sample.csv.gz", EVENTS_CSV)
    data = read_retailrocket(tmp_path)
    expected = frame(
        user_id=[257597, 992329, 111016],
        item_id=[355908, 248676, 318965],
        timestamp=[1433221332117, 1433224214164, 1433221999827],
        event=["view", "transaction", "addtocart"],
    )
    assert_frame_equal(data.frame, expected)
    assert data.meta["time_unit"] == "ms"
    assert read_retailrocket(tmp_path, events={"view", "addtocart"}).frame["event"].to_list() == [
        "view",
        "addtocart",
    ]
    assert read_retailrocket(tmp_path, events="transaction").frame["user_id"].to_list() == [992329]
    raises(
        lambda: read_retailrocket(tmp_path, events=["buy"]),
        "Unknown RetailRocket event type(s) ['buy']",
        "'view'",
    )


def test_retailrocket_malformed(tmp_path):
    only_views = write(tmp_path / "a" / "events.csv", EVENTS_CSV.splitlines()[0] + "\n1,2,view,3,\n")
    raises(lambda: read_retailrocket(only_views, events=["transaction"]), "has no events of type ['transaction']")
    renamed = write(tmp_path / "b" / "events.csv", "timestamp,user,event,itemid\n1,2,view,3\n")
    raises(lambda: read_retailrocket(renamed), "lacks column(s) ['visitorid']", "'user'", "transactionid")


def test_retailrocket_sessions(tmp_path):
    text = "timestamp\tuser_id\titem_id\tsession_id\n1442004589\t0\t285930\t0\n1442004759\t0\t357564\t0\n"
    data = read_retailrocket_sessions(write(tmp_path / "sample_retailrocket.tsv.gz", text))
    assert_frame_equal(data.frame, frame(user_id=[0, 0], item_id=[285930, 357564], timestamp=[1442004589, 1442004759]))
    assert data.meta["time_unit"] == "s"


def test_xmrec_users_are_market_qualified(tmp_path):
    header = "userId itemId rate date\n"
    write(tmp_path / "de_5core.txt.gz", header + "U1 B001 5.0 2016-06-13\nU2 B002 4.0 2018-01-22\n")
    write(tmp_path / "fr_5core.txt", header + "U1 B001 3.0 2017-01-01\n")
    data = read_xmrec(tmp_path)
    expected = frame(
        user_id=["de:U1", "de:U2", "fr:U1"],
        item_id=["B001", "B002", "B001"],
        timestamp=[1465776000, 1516579200, 1483228800],
        market=["de", "de", "fr"],
        rating=[5.0, 4.0, 3.0],
    )
    assert_frame_equal(data.frame, expected)
    assert (data.num_users, data.num_items) == (3, 2)
    assert read_xmrec(tmp_path, markets=["fr"]).frame["user_id"].to_list() == ["fr:U1"]
    raises(lambda: read_xmrec(tmp_path, markets=["us"]), "XMRec market(s) ['us']", "available: ['de', 'fr']")
    bad = write(tmp_path / "bad" / "uk_5core.txt", header + "U1 B001 5.0 2016-06-13\nU2 B002 4.0 2018-13-45\n")
    raises(lambda: read_xmrec(bad.parent), "line 3", "column 'timestamp' is '2018-13-45'", "YYYY-MM-DD")
    raises(lambda: read_xmrec(tmp_path / "missing"), "holds no XMRec `<market>_5core.txt[.gz]` files")


def test_read_table_sources(tmp_path):
    df = pd.DataFrame({"uid": ["a", "a", "b"], "sku": [3, 1, 2], "ts": [10, 20, 5]})
    mapping = {"user_id": "uid", "item_id": "sku", "timestamp": "ts"}
    expected = frame(user_id=["a", "a", "b"], item_id=[3, 1, 2], timestamp=[10, 20, 5])
    assert_frame_equal(read_table(df, columns=mapping).frame, expected)
    text = expected.assign(item_id=pd.Series(["3", "1", "2"]))  # IDs of a text file stay the strings written
    csv_path = write(tmp_path / "log.csv.gz", df.to_csv(index=False))
    assert_frame_equal(read_table(csv_path, columns=mapping, name="mine").frame, text)
    write(tmp_path / "log.tsv", df.to_csv(index=False, sep="\t"))
    assert_frame_equal(read_table(tmp_path / "log.tsv", columns=mapping).frame, text)
    write(tmp_path / "log.txt", df.to_csv(index=False, sep=";"))
    assert_frame_equal(read_table(tmp_path / "log.txt", columns=mapping).frame, text)  # sniffed
    assert_frame_equal(read_table(tmp_path / "log.txt", columns=mapping, sep=";").frame, text)
    df.to_parquet(tmp_path / "log.parquet")
    data = read_table(tmp_path / "log.parquet", columns=mapping, name="mine")
    assert_frame_equal(data.frame, expected)
    assert data.name == "mine" and data.meta["source"] == [str(tmp_path / "log.parquet")]


def test_read_table_datetime_timestamps_become_unix_seconds():
    df = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "timestamp": pd.to_datetime(["2017-01-01", "2018-01-22"])})
    assert read_table(df).frame["timestamp"].to_list() == [1483228800, 1516579200]


def test_read_table_errors(tmp_path):
    df = pd.DataFrame({"uid": [1], "sku": [2]})
    raises(
        lambda: read_table(df),
        "has no column ['item_id', 'user_id']",
        "it has ['uid', 'sku']",
        "columns={'user_id': 'uid', 'item_id': 'sku'}",
    )
    path = write(tmp_path / "log.csv", "uid,sku\n1,2\n,3\n")
    raises(
        lambda: read_table(path, columns={"user_id": "uid", "item_id": "sku"}),
        "line 3",
        "column 'uid' is empty",
        "',3'",
    )
    raises(lambda: read_table(write(tmp_path / "empty.csv", "")), "the file is empty")
    raises(lambda: read_table(tmp_path / "nope.csv"), "nope.csv does not exist")


# --- the shared public datasets ---

SHARED_CASES = [
    ("Beauty", lambda p: read_amazon("beauty", p), (22363, 12101, 198502, True)),
    ("Sports_and_Outdoors", lambda p: read_amazon("sports", p), (35598, 18357, 296337, True)),
    ("Toys_and_Games", lambda p: read_amazon("toys", p), (19412, 11924, 167597, False)),
    ("Yelp", read_yelp, (30431, 20033, 316354, False)),
    ("Yelp", lambda p: read_yelp(p, variant="ticoserec"), (30431, 20033, 316354, True)),
    ("ml-1m", lambda p: read_movielens_1m(p, source="sequence"), (6040, 3706, 1000209, False)),
    ("ml-1m", lambda p: read_movielens_1m(p, source="ratings"), (2999, 3615, 487650, True)),
    ("ml-100k", read_movielens_100k, (943, 1682, 100000, True)),
    ("ml-latest-small", read_movielens_latest_small, (610, 9724, 100836, True)),
    ("retailrocket", read_retailrocket, (1500, 2127, 2771, True)),
    ("retailrocket", read_retailrocket_sessions, (2496, 5566, 10080, True)),
    ("xmrec", read_xmrec, (14313, 8304, 134845, True)),  # 14,311 raw ids, 2 of them in two markets
]
SHARED_IDS = [
    "beauty", "sports", "toys", "yelp", "yelp-ticoserec", "ml-1m-seq", "ml-1m-ratings",
    "ml-100k", "ml-latest-small", "retailrocket", "retailrocket-sessions", "xmrec",
]  # fmt: skip


@pytest.mark.parametrize("folder, read, counts", SHARED_CASES, ids=SHARED_IDS)
def test_shared_dataset_counts(folder, read, counts):
    data = read(shared(folder))
    assert (data.num_users, data.num_items, len(data), data.has_time) == counts


def test_shared_beauty_details_and_speed():
    folder = shared("Beauty")
    start = time.perf_counter()
    data = read_amazon("beauty", folder)
    assert time.perf_counter() - start < 2.0
    assert len(data.items) == 12101
    assert len({a for attrs in data.items["attributes"] for a in attrs}) == 637
    assert (data.frame.groupby("user_id")["timestamp"].diff().fillna(0) >= 0).all()
    assert (data.frame["user_id"].min(), data.frame["user_id"].max()) == (1, 22363)


def test_shared_movielens_details():
    ml1m = read_movielens_1m(shared("ml-1m"), source="ratings")
    assert ml1m.frame["rating"].value_counts().sort_index().to_list() == [
        27472,
        53838,
        127216,
        170579,
        108545,
    ]
    assert len(ml1m.items) == 3883
    sequence = read_movielens_1m(shared("ml-1m"))
    assert set(sequence.frame["item_id"]) <= set(sequence.items.index)
    ml100k = read_movielens_100k(shared("ml-100k"))
    assert ml100k.frame["rating"].value_counts().sort_index().to_list() == [6110, 11370, 27145, 34174, 21201]
    assert ml100k.titles()[1] == "Toy Story"
    assert_frame_equal(
        read_movielens_latest_small(shared("ml-latest-small")).frame, read_movielens_latest_small().frame
    )


def test_shared_retailrocket_and_xmrec_details():
    events = read_retailrocket(shared("retailrocket")).frame["event"].value_counts().to_dict()
    assert events == {"view": 2695, "addtocart": 62, "transaction": 14}
    xmrec = read_xmrec(shared("xmrec"))
    sizes = xmrec.frame.groupby("market").size().to_dict()
    assert sizes == {"ca": 44779, "de": 17300, "fr": 17624, "in": 2015, "jp": 4485, "mx": 17095, "uk": 31547}
    assert xmrec.frame["user_id"].str.split(":", n=1).str[1].nunique() == 14311
    first, last = xmrec.frame["timestamp"].min(), xmrec.frame["timestamp"].max()
    assert (pd.Timestamp(first, unit="s").date().isoformat(), pd.Timestamp(last, unit="s").year) == (
        "2004-05-09",
        2020,
    )
    assert read_xmrec(shared("xmrec"), markets=["in"]).num_users == 239


# --- registry and load_dataset ---


def test_registry_urls_and_checksums():
    assert set(DATASETS) == {
        "ml-latest-small", "ml-1m", "ml-100k", "beauty", "sports", "toys", "yelp", "retailrocket", "xmrec",
    }  # fmt: skip
    for name in ("ml-latest-small", "ml-1m", "ml-100k"):
        (remote,) = DATASETS[name].files
        assert (remote.url, remote.sha256, remote.unzip_strip) == (
            f"https://files.grouplens.org/datasets/movielens/{name}.zip",
            None,
            1,
        )
    beauty = {f.name: f for f in DATASETS["beauty"].files}
    assert beauty["Beauty.txt"].url == (
        "https://raw.githubusercontent.com/salesforce/ICLRec/2890e6c3ff6a22c6699fc19cb863b66786c1cde4/data/Beauty.txt"
    )
    assert beauty["Beauty.txt"].sha256 == "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"
    assert len(DATASETS["xmrec"].files) == 7 and DATASETS["retailrocket"].files == ()
    for spec in DATASETS.values():
        assert spec.licence
        for remote in spec.files:
            assert remote.url.startswith("https://")
            if "githubusercontent" in remote.url:
                assert len(remote.sha256) == 64 and int(remote.sha256, 16) >= 0


@pytest.mark.parametrize("name", ["beauty", "sports", "toys", "yelp", "xmrec"])
def test_shared_files_match_registry_checksums(name):
    spec = DATASETS[name]
    folder = shared(spec.folder)
    for remote in spec.files:
        with gzip.open(folder / (remote.name + ".gz"), "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == remote.sha256, remote.name


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No $SEQREC_DATA_DIR, and the cache in a temporary folder."""
    monkeypatch.delenv("SEQREC_DATA_DIR", raising=False)
    monkeypatch.setenv("SEQREC_CACHE", str(tmp_path / "cache"))
    return monkeypatch


def toys(folder: Path, user: int) -> Path:
    return write(folder / "Toys_and_Games" / "Toys_and_Games.txt", f"{user} 1 2 3\n")


def test_load_dataset_resolution_order(env, tmp_path):
    toys(tmp_path / "datasets", 1)
    toys(tmp_path / "cache", 2)
    explicit = toys(tmp_path / "mine", 3)
    env.setenv("SEQREC_DATA_DIR", str(tmp_path / "datasets"))
    assert load_dataset("toys", path=explicit).frame["user_id"].iloc[0] == 3
    assert load_dataset("toys", path=explicit.parent).frame["user_id"].iloc[0] == 3
    assert load_dataset("Toys").frame["user_id"].iloc[0] == 1
    env.delenv("SEQREC_DATA_DIR")
    assert load_dataset("toys", download=False).frame["user_id"].iloc[0] == 2
    toys(tmp_path / "other-cache", 4)
    assert load_dataset("toys", cache_dir=tmp_path / "other-cache").frame["user_id"].iloc[0] == 4
    raises(
        lambda: load_dataset("toys", path=tmp_path / "nowhere"),
        "nowhere given for dataset 'toys' does not exist",
    )


def test_load_dataset_takes_only_the_full_retailrocket_file_by_name(env, tmp_path):
    folder = tmp_path / "datasets" / "retailrocket"
    write(folder / "events_sample_1500visitors.csv.gz", EVENTS_CSV)
    env.setenv("SEQREC_DATA_DIR", str(tmp_path / "datasets"))
    raises(
        lambda: load_dataset("retailrocket"),
        f"{folder} (none of ['events.csv'] there)",
        "a sample of it is read only when passed as data.path / path=",
    )
    assert find_dataset("retailrocket") is None
    assert len(load_dataset("retailrocket", path=folder)) == 3
    write(folder / "events.csv", EVENTS_CSV.replace("view,355908", "view,1"))
    assert find_dataset("retailrocket") == folder
    assert 1 in load_dataset("retailrocket").frame["item_id"].to_list()


def test_load_dataset_ml_latest_small_falls_back_to_embedded(env):
    data = load_dataset("ml-latest-small", download=False)
    assert len(data) == 100836 and data.meta["source"][0].startswith(str(EMBEDDED_ML_LATEST_SMALL))


def test_load_dataset_not_found_lists_places_and_fixes(env, tmp_path):
    cache = tmp_path / "cache" / "ml-1m"
    raises(
        lambda: load_dataset("ml-1m", download=False),
        "Dataset 'ml-1m' was not found",
        "path argument: not given",
        "$SEQREC_DATA_DIR: not set",
        f"cache: {cache} (none of ['ratings.dat', 'ml-1m.txt', 'ratings*.dat'] there)",
        "download: not tried (download=False)",
        "1. load_dataset('ml-1m', path=...)",
        "2. set SEQREC_DATA_DIR to a folder that holds ml-1m/",
        "3. allow the download (download=True; from https://files.grouplens.org/datasets/movielens/ml-1m.zip)",
    )
    env.setenv("SEQREC_DATA_DIR", str(tmp_path / "datasets"))
    raises(
        lambda: load_dataset("retailrocket"),
        f"$SEQREC_DATA_DIR: {tmp_path / 'datasets' / 'retailrocket'}",
        "download: not possible for this dataset",
        "https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset",
        f"put it into {tmp_path / 'cache' / 'retailrocket'}",
    )
    raises(lambda: load_dataset("movielens"), "Unknown dataset 'movielens'", "'beauty'", "'xmrec'")


def test_load_dataset_downloads_into_the_cache(env, tmp_path):
    source = write(tmp_path / "upstream" / "Toys.txt", "5 1 2\n6 2 3\n")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    remote = RemoteFile("Toys_and_Games.txt", source.as_uri(), digest)
    env.setitem(readers.DATASETS, "toys", dataclasses.replace(DATASETS["toys"], files=(remote,)))
    data = load_dataset("toys")
    assert_frame_equal(data.frame, frame(user_id=[5, 5, 6, 6], item_id=[1, 2, 2, 3]))
    cached = tmp_path / "cache" / "Toys_and_Games" / "Toys_and_Games.txt"
    assert cached.read_bytes() == source.read_bytes()
    source.unlink()
    assert len(load_dataset("toys")) == 4  # served from the cache now


def test_load_dataset_download_checksum_mismatch(env, tmp_path):
    source = write(tmp_path / "upstream" / "Toys.txt", "5 1 2\n")
    got = hashlib.sha256(source.read_bytes()).hexdigest()
    remote = RemoteFile("Toys_and_Games.txt", source.as_uri(), "0" * 64)
    env.setitem(readers.DATASETS, "toys", dataclasses.replace(DATASETS["toys"], files=(remote,)))
    raises(
        lambda: load_dataset("toys"),
        f"expected {'0' * 64}, got {got}",
        "download into",
        "Fix it in one of three ways",
    )
    assert list((tmp_path / "cache" / "Toys_and_Games").iterdir()) == []


def test_load_dataset_zip_download_trusts_on_first_use(env, tmp_path):
    archive = tmp_path / "upstream" / "ml-100k.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
        zf.writestr("ml-100k/u.item", u_item_line(242, "Kolya (1996)", {"Comedy"}))
    remote = RemoteFile("ml-100k.zip", archive.as_uri(), None, unzip_strip=1)
    env.setitem(readers.DATASETS, "ml-100k", dataclasses.replace(DATASETS["ml-100k"], files=(remote,)))
    with pytest.warns(UserWarning, match="recorded sha256 .* on first use"):
        data = load_dataset("ml-100k")
    assert (len(data), data.titles()) == (2, {242: "Kolya (1996)"})
    cache = tmp_path / "cache" / "ml-100k"
    recorded = (cache / "ml-100k.zip.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert sorted(p.name for p in cache.iterdir()) == [
        "ml-100k.zip",
        "ml-100k.zip.sha256",
        "u.data",
        "u.item",
    ]


def test_load_dataset_reads_the_shared_layout(env):
    env.setenv("SEQREC_DATA_DIR", str(shared("Beauty").parent))
    data = load_dataset("beauty", download=False)
    assert (data.num_users, data.num_items, len(data)) == (22363, 12101, 198502)
