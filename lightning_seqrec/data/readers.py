"""Readers for the public sequential-recommendation datasets and for custom tables, plus `load_dataset`.

Every reader returns an `Interactions`, reads plain or gzip files (chosen by the `.gz` suffix) and turns
malformed input into a `DataError` naming the file, the line, the offending text and the fix. Timestamps are
integer unix seconds, except RetailRocket's `events.csv`, which keeps its integer milliseconds; each reader says its
unit in `meta["time_unit"]`, which the data module reads to turn them into seconds (`data.time_units`).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd

from lightning_seqrec.data.download import download as download_file
from lightning_seqrec.data.download import extract_zip
from lightning_seqrec.data.interactions import (
    REQUIRED_COLUMNS,
    Interactions,
    clean_timestamps,
    holds_dates,
    row_label,
)
from lightning_seqrec.errors import DataError

PathLike = str | os.PathLike[str]

EMBEDDED_ML_LATEST_SMALL = Path(__file__).resolve().parent / "embedded" / "ml-latest-small"

# --- Shared plumbing: opening files, locating them, and error messages that point at a line ---


def _open_text(path: Path, encoding: str = "utf-8") -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding)
    return open(path, encoding=encoding)


def _error(path: Path, problem: str, fix: str, lineno: int | None = None, line: str | None = None) -> DataError:
    """A DataError that says where (file and line), what (the offending text) and how to fix it."""
    where = f"{path}, line {lineno}" if lineno is not None else str(path)
    shown = f"\n  offending line: {line.rstrip(chr(13) + chr(10))!r}" if line is not None else ""
    return DataError(f"{where}: {problem}.{shown}\n  fix: {fix}")


def _unreadable(path: Path, exc: Exception, encoding: str = "utf-8") -> DataError:
    """A DataError for bytes that cannot be decoded: not gzip despite `.gz`, truncated, or not `encoding`."""
    if isinstance(exc, UnicodeDecodeError):
        problem = f"is not {encoding} text ({exc.reason} at byte {exc.start})"
        return _error(path, problem, f"re-save the file as {encoding} text")
    fix = "a file ending in .gz must be complete gzip data; download or compress it again"
    return _error(path, f"cannot be read ({exc})", fix)


def _line_at(path: Path, lineno: int, encoding: str = "utf-8") -> str:
    with _open_text(path, encoding) as fh:
        for number, line in enumerate(fh, 1):
            if number == lineno:
                return line
    return ""


def _data_lines(path: Path, rows: np.ndarray, header_lines: int, encoding: str) -> Iterator[tuple[int, str]]:
    """1-based line number and text of each data row in `rows` (ascending), skipping the header and blank lines
    as pandas does, in one pass over the file."""
    wanted = iter(rows.tolist())
    target, seen = next(wanted, None), -1
    with _open_text(path, encoding) as fh:
        for number, line in enumerate(fh, 1):
            if target is None:
                return
            if number > header_lines and line.strip():
                seen += 1
                if seen == target:
                    yield number, line
                    target = next(wanted, None)
    if target is not None:
        raise _error(path, f"changed while being read (data row {target + 1} is gone)", "read it again")


def _data_line(path: Path, row: int, header_lines: int, encoding: str) -> tuple[int, str]:
    """1-based line number and text of data row `row`."""
    return next(_data_lines(path, np.array([row]), header_lines, encoding))


def _matches(folder: Path, pattern: str) -> list[Path]:
    found = sorted(folder.glob(pattern)) + sorted(folder.glob(pattern + ".gz"))
    return [p for p in found if p.is_file()]


def _locate(path: PathLike, patterns: Sequence[str], what: str) -> Path:
    """`path` itself when it is a file, else the one file in folder `path` matching the first pattern that
    matches (each pattern also tried with `.gz`)."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path} does not exist; pass the {what} file or the folder that holds it.")
    for pattern in patterns:
        found = _matches(path, pattern)
        if len(found) > 1:
            names = [p.name for p in found]
            raise DataError(f"{path} has several {what} files {names}; pass the one you mean as the path.")
        if found:
            return found[0]
    has = sorted(p.name for p in path.iterdir())
    raise DataError(
        f"{path} holds no {what} file (looked for {list(patterns)}, plain or .gz); it has {has}. "
        "Pass the file itself, or put the file with its usual name into this folder."
    )


def _sibling(main: Path, name: str, required: bool = False) -> Path | None:
    """The file `name` (plain or .gz) next to `main`; None when absent unless `required`."""
    found = _matches(main.parent, name)
    if not found and required:
        raise DataError(f"{main.parent} lacks {name} (plain or .gz), which {main.name} needs beside it.")
    return found[0] if found else None


def _meta(*paths: Path | None, time_unit: str | None = None) -> dict:
    meta: dict = {"source": [str(p) for p in paths if p is not None]}
    if time_unit is not None:
        meta["time_unit"] = time_unit
    return meta


# --- Delimited tables (CSV / TSV / '::'), read vectorised by pandas and validated cell-wise ---


def _read_csv(path: Path, fix: str, **kwargs) -> pd.DataFrame:
    """`pandas.read_csv` whose failures (empty, ragged rows, bad encoding) become DataErrors with a line."""
    encoding = kwargs.setdefault("encoding", "utf-8")
    try:
        frame = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise _error(path, "the file is empty", fix) from None
    except pd.errors.ParserError as exc:
        found = re.search(r"line (\d+)", str(exc))
        lineno = int(found.group(1)) if found else None
        line = _line_at(path, lineno, encoding) if lineno else None
        raise _error(path, "the line has more fields than the first one", fix, lineno, line) from None
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise _unreadable(path, exc, encoding) from None
    if frame.empty:
        raise _error(path, "has no data rows", fix)
    return frame


def _read_headerless(
    path: Path, sep: str, width: int, fix: str, encoding: str = "utf-8", engine: str = "c"
) -> pd.DataFrame:
    """A file without header whose every line must have `width` fields; columns are numbered 0..width-1."""
    frame = _read_csv(path, fix, sep=sep, header=None, quoting=csv.QUOTE_NONE, encoding=encoding, engine=engine)
    if frame.shape[1] != width:
        lineno, line = _data_line(path, 0, 0, encoding)
        raise _error(path, "the first line does not have the expected number of fields", fix, lineno, line)
    return frame


def _select(frame: pd.DataFrame, columns: Mapping[str, str], path: Path, fix: str) -> pd.DataFrame:
    """Rename the file's columns (`columns` maps ours -> theirs) and keep only those; absent ones raise."""
    missing = [theirs for theirs in columns.values() if theirs not in frame.columns]
    if missing:
        raise _error(path, f"lacks column(s) {missing}; it has {list(frame.columns)}", fix)
    return frame[list(columns.values())].set_axis(list(columns), axis=1)


EXPECTED = {"int": "an integer", "float": "a number", "text": "a value", "date": "a YYYY-MM-DD date"}


def _cast(values: pd.Series, kind: str) -> tuple[pd.Series, np.ndarray]:
    """`values` parsed as `kind` (a key of EXPECTED), with the mask of cells that failed to parse."""
    if kind == "text":
        return values, values.isna().to_numpy()
    if kind == "date":
        parsed = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
        seconds = parsed.to_numpy().astype("datetime64[s]").astype(np.int64)
        return pd.Series(seconds, index=values.index), parsed.isna().to_numpy()
    numbers = values if pd.api.types.is_integer_dtype(values.dtype) else pd.to_numeric(values, errors="coerce")
    bad = numbers.isna().to_numpy() | ((numbers % 1 != 0).to_numpy() if kind == "int" else False)
    return (numbers if bad.any() else numbers.astype("int64" if kind == "int" else "float64")), bad


def _coerce(
    frame: pd.DataFrame,
    path: Path,
    fix: str,
    *,
    ints: Sequence = (),
    floats: Sequence = (),
    texts: Sequence = (),
    dates: Sequence = (),
    header_lines: int = 1,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Cast columns to int64 / float64 / non-empty text / unix seconds (from YYYY-MM-DD dates); the first cell
    that does not fit raises with its line."""
    wanted = [(c, "int") for c in ints] + [(c, "float") for c in floats]
    wanted += [(c, "text") for c in texts] + [(c, "date") for c in dates]
    out = frame.copy()
    for col, kind in wanted:
        out[col], bad = _cast(frame[col], kind)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            lineno, line = _data_line(path, row, header_lines, encoding)
            value = frame[col].iloc[row]
            cell = "is empty" if pd.isna(value) else f"is {value!r}"
            raise _error(path, f"column {col!r} {cell}, expected {EXPECTED[kind]}", fix, lineno, line)
    return out


# --- One-sequence-per-line files (`user_id v1 v2 ...`): S3-Rec / ICLRec / SASRec items and times ---

SEQUENCE_FIX = (
    "every line must be `user_id item_id item_id ...`: integers separated by spaces, one user per line; "
    "correct or delete that line"
)


@dataclass(frozen=True)
class _Lines:
    """A parsed sequence file: one entry per non-blank line; all values after the user ids in one array."""

    users: np.ndarray
    lengths: np.ndarray
    values: np.ndarray
    line_numbers: np.ndarray


def _int_array(tokens: list[str]) -> np.ndarray | int:
    """The tokens as int64, or the index of the first token that is not an integer."""
    try:
        return np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        ok = pd.Series(tokens, dtype=object).str.fullmatch(r"[+-]?\d{1,18}").to_numpy(dtype=bool)
        return int(np.argmin(ok))


def _read_lines(path: Path, what: str = "item id") -> _Lines:
    """Parse a `user_id v1 v2 ...` file with one pass over its lines into flat int64 arrays."""
    users: list[str] = []
    lengths: list[int] = []
    numbers: list[int] = []
    tokens: list[str] = []
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if len(parts) == 1:
                    raise _error(path, f"user {parts[0]!r} has no {what}s", SEQUENCE_FIX, lineno, line)
                if parts:
                    users.append(parts[0])
                    lengths.append(len(parts) - 1)
                    numbers.append(lineno)
                    tokens.extend(parts[1:])
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise _unreadable(path, exc) from None
    if not users:
        raise _error(path, "the file is empty", f"{SEQUENCE_FIX}; check that the right file was given")
    line_numbers = np.array(numbers, dtype=np.int64)
    length_array = np.array(lengths, dtype=np.int64)
    ends = np.cumsum(length_array)

    def user_line(k: int) -> int:
        return int(line_numbers[k])

    def value_line(k: int) -> int:
        return int(line_numbers[np.searchsorted(ends, k, side="right")])

    user_array = _int_array(users)
    if isinstance(user_array, int):
        lineno = user_line(user_array)
        problem = f"user id {users[user_array]!r} is not an integer"
        raise _error(path, problem, SEQUENCE_FIX, lineno, _line_at(path, lineno))
    values = _int_array(tokens)
    if isinstance(values, int):
        lineno = value_line(values)
        problem = f"{what} {tokens[values]!r} is not an integer"
        raise _error(path, problem, SEQUENCE_FIX, lineno, _line_at(path, lineno))
    _one_spelling(path, users, user_array, "user id", user_line)
    if what != "timestamp":
        _one_spelling(path, tokens, values, what, value_line)
    return _Lines(user_array, length_array, values, line_numbers)


def _one_spelling(path: Path, tokens: list[str], ids: np.ndarray, what: str, line_of: Callable[[int], int]) -> None:
    """Refuse two spellings of one integer id (`007` and `7`): parsed as numbers they would become one id."""
    if len(set(tokens)) == len(np.unique(ids)):
        return
    first: dict[int, str] = {}
    for k, (token, number) in enumerate(zip(tokens, ids.tolist(), strict=True)):
        if first.setdefault(number, token) != token:
            lineno = line_of(k)
            problem = f"{what}s {first[number]!r} and {token!r} are the same integer, so they would become one id"
            fix = "write every id one way, without leading zeros or a '+' sign"
            raise _error(path, problem, fix, lineno, _line_at(path, lineno))


def _lines_frame(lines: _Lines) -> pd.DataFrame:
    """One row per (user, item) of a parsed sequence file, in file order."""
    return pd.DataFrame({"user_id": np.repeat(lines.users, lines.lengths), "item_id": lines.values})


def _check_aligned(items: _Lines, items_path: Path, times: _Lines, time_path: Path) -> None:
    """The time file must list the same users, in the same order, with one timestamp per item."""
    fix = (
        f"the time file must have the same lines as {items_path.name}: the same user id first, then exactly "
        "one timestamp per item; use the time file made for this item file (TiCoSeRec-numbered time files "
        "only align with their own item file)"
    )
    n = min(len(items.users), len(times.users))
    differs = np.flatnonzero((items.users[:n] != times.users[:n]) | (items.lengths[:n] != times.lengths[:n]))
    if differs.size:
        k = int(differs[0])
        lineno = int(times.line_numbers[k])
        problem = (
            f"user {times.users[k]} with {times.lengths[k]} timestamps does not match line "
            f"{items.line_numbers[k]} of {items_path.name} "
            f"(user {items.users[k]} with {items.lengths[k]} items)"
        )
        raise _error(time_path, problem, fix, lineno, _line_at(time_path, lineno))
    if len(times.users) > n:
        lineno = int(times.line_numbers[n])
        problem = f"has more lines than {items_path.name} ({len(items.users)} users)"
        raise _error(time_path, problem, fix, lineno, _line_at(time_path, lineno))
    if len(items.users) > n:
        problem = (
            f"ends after {n} users but {items_path.name} continues at line {items.line_numbers[n]} "
            f"(user {items.users[n]})"
        )
        raise _error(time_path, problem, fix)


def _read_attributes(path: Path) -> pd.DataFrame:
    """S3-Rec `{"item_id": [attribute ids]}` JSON as an items table with an `attributes` column."""
    fix = 'the file must be one JSON object {"<item id>": [<attribute id>, ...], ...}'
    try:
        with _open_text(path) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        problem = f"is not valid JSON ({exc.msg}, column {exc.colno}; the line is shown around that column)"
        near = _line_at(path, exc.lineno)[max(exc.colno - 60, 0) : exc.colno + 60]
        raise _error(path, problem, fix, exc.lineno, near) from None
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise _unreadable(path, exc) from None
    if not isinstance(data, dict) or not data:
        raise _error(path, "does not hold a non-empty JSON object", fix)
    keys = list(data)
    ids = _int_array(keys)
    if isinstance(ids, int):
        raise _error(path, f"item id {keys[ids]!r} is not an integer", fix)
    bad = next((k for k, v in data.items() if not (isinstance(v, list) and all(type(a) is int for a in v))), None)
    if bad is not None:
        raise _error(path, f"item {bad!r} maps to {data[bad]!r}, not a list of integers", fix)
    return pd.DataFrame({"attributes": list(data.values())}, index=pd.Index(ids, name="item_id"))


def read_sequence_file(
    path: PathLike,
    time_path: PathLike | None = None,
    attributes_path: PathLike | None = None,
    name: str = "custom",
) -> Interactions:
    """Read an S3-Rec / ICLRec sequence file (`user_id item item ...` per line, chronological), with optional
    positionally aligned time file (unix seconds) and `*_item2attributes.json` item attributes."""
    path = Path(path)
    time_path = Path(time_path) if time_path is not None else None
    attributes_path = Path(attributes_path) if attributes_path is not None else None
    lines = _read_lines(path)
    frame = _lines_frame(lines)
    if time_path is not None:
        times = _read_lines(time_path, what="timestamp")
        _check_aligned(lines, path, times, time_path)
        frame["timestamp"] = times.values
    items = _read_attributes(attributes_path) if attributes_path is not None else None
    meta = _meta(path, time_path, attributes_path, time_unit="s" if time_path else None)
    return Interactions(frame, items=items, name=name, meta=meta)


AMAZON_DATASETS = {"beauty": "Beauty", "sports": "Sports_and_Outdoors", "toys": "Toys_and_Games"}


def read_amazon(name: str, path: PathLike, with_time: bool = True) -> Interactions:
    """Amazon Beauty / Sports_and_Outdoors / Toys_and_Games in the S3-Rec preparation, from the dataset folder
    (or its `<Name>.txt`); `<Name>_time.txt` and `<Name>_item2attributes.json` beside it are used if there."""
    stems = {**AMAZON_DATASETS, **{stem.lower(): stem for stem in AMAZON_DATASETS.values()}}
    if name.lower() not in stems:
        raise DataError(f"Unknown Amazon dataset {name!r}; choose one of {sorted(AMAZON_DATASETS.items())}.")
    stem = stems[name.lower()]
    main = _locate(path, [f"{stem}.txt"], f"Amazon {stem} sequence")
    time_path = _sibling(main, f"{stem}_time.txt") if with_time else None
    attributes = _sibling(main, f"{stem}_item2attributes.json")
    key = next(k for k, v in AMAZON_DATASETS.items() if v == stem)
    return read_sequence_file(main, time_path, attributes, name=key)


def read_yelp(path: PathLike, variant: Literal["s3rec", "ticoserec"] = "s3rec") -> Interactions:
    """Yelp in the S3-Rec preparation: `Yelp.txt` (+ attributes, no timestamps) by default, or with
    `variant="ticoserec"` the timed twin `Yelp_ticoserec_item.txt` + `_time.txt`, whose ids differ."""
    if variant == "s3rec":
        main = _locate(path, ["Yelp.txt"], "Yelp sequence")
        return read_sequence_file(main, None, _sibling(main, "Yelp_item2attributes.json"), name="yelp")
    if variant == "ticoserec":
        main = _locate(path, ["Yelp_ticoserec_item.txt"], "Yelp (TiCoSeRec numbering) sequence")
        times = _sibling(main, "Yelp_ticoserec_time.txt", required=True)
        return read_sequence_file(main, times, None, name="yelp-ticoserec")
    raise DataError(f"Unknown Yelp variant {variant!r}; use 's3rec' (Yelp.txt) or 'ticoserec' (timed twin).")


# --- MovieLens ---

ML_GENRES_100K = (
    "unknown|Action|Adventure|Animation|Children's|Comedy|Crime|Documentary|Drama|Fantasy|Film-Noir|Horror|"
    "Musical|Mystery|Romance|Sci-Fi|Thriller|War|Western"
).split("|")


def _items(ids: pd.Series, title: pd.Series, category: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {"title": title.to_numpy(), "category": category.to_numpy()},
        index=pd.Index(ids.to_numpy(), name="item_id"),
    )


def read_movielens_latest_small(path: PathLike | None = None) -> Interactions:
    """MovieLens latest-small from its folder (`ratings.csv` + `movies.csv`, GroupLens CSV), or from the copy
    embedded in the package when `path` is None; items carry `title` and `category` (the genres string)."""
    ratings = _locate(EMBEDDED_ML_LATEST_SMALL if path is None else path, ["ratings.csv"], "ratings.csv")
    fix = "ratings.csv must be the GroupLens CSV with header userId,movieId,rating,timestamp"
    frame = _select(
        _read_csv(ratings, fix),
        {"user_id": "userId", "item_id": "movieId", "rating": "rating", "timestamp": "timestamp"},
        ratings,
        fix,
    )
    frame = _coerce(frame, ratings, fix, ints=("user_id", "item_id", "timestamp"), floats=("rating",))
    movies = _sibling(ratings, "movies.csv")
    items = None
    if movies is not None:
        movie_fix = "movies.csv must be the GroupLens CSV with header movieId,title,genres"
        table = _select(
            _read_csv(movies, movie_fix),
            {"item_id": "movieId", "title": "title", "category": "genres"},
            movies,
            movie_fix,
        )
        table = _coerce(table, movies, movie_fix, ints=("item_id",))
        items = _items(table["item_id"], table["title"], table["category"])
    return Interactions(frame, items=items, name="ml-latest-small", meta=_meta(ratings, movies, time_unit="s"))


RATINGS_DAT_FIX = (
    "each line of ratings.dat must be UserID::MovieID::Rating::Timestamp (four integers separated by '::'); "
    "correct or delete that line"
)


def _read_ratings_dat(path: Path) -> pd.DataFrame:
    """ML-1M `ratings.dat`, split on ':' by pandas' C parser: fields 1, 3 and 5 are the empty gaps of '::'."""
    raw = _read_headerless(path, ":", 7, RATINGS_DAT_FIX)
    gaps = raw[[1, 3, 5]].notna().any(axis=1).to_numpy()
    if gaps.any():
        lineno, line = _data_line(path, int(np.flatnonzero(gaps)[0]), 0, "utf-8")
        raise _error(path, "the line does not have 4 fields separated by '::'", RATINGS_DAT_FIX, lineno, line)
    frame = raw[[0, 2, 4, 6]].set_axis(["user_id", "item_id", "rating", "timestamp"], axis=1)
    ints = ("user_id", "item_id", "timestamp")
    return _coerce(frame, path, RATINGS_DAT_FIX, ints=ints, floats=("rating",), header_lines=0)


def _read_movies_dat(path: Path) -> pd.DataFrame:
    """ML-1M `movies.dat` (`MovieID::Title::Genres`, latin-1) as an items table."""
    fix = "each line of movies.dat must be MovieID::Title::Genres (latin-1 text)"
    raw = _read_headerless(path, "::", 3, fix, encoding="latin-1", engine="python")
    table = _coerce(raw, path, fix, ints=(0,), texts=(1,), header_lines=0, encoding="latin-1")
    return _items(table[0], table[1], table[2].fillna(""))


def read_movielens_1m(path: PathLike, source: Literal["auto", "ratings", "sequence"] = "auto") -> Interactions:
    """MovieLens-1M from the official `ratings.dat` (timestamps; a partial `ratings*.dat` also works) or the
    one-sequence-per-line `ml-1m.txt` (no timestamps); `movies.dat` beside it adds titles and genres.

    For a folder, `source="auto"` takes `ratings.dat` if present, else `ml-1m.txt`, else a `ratings*.dat`;
    `"ratings"` / `"sequence"` force one. For a file, `"auto"` goes by its name (`.dat` = ratings).
    """
    patterns = {
        "auto": ["ratings.dat", "ml-1m.txt", "ratings*.dat"],
        "ratings": ["ratings.dat", "ratings*.dat"],
        "sequence": ["ml-1m.txt"],
    }
    if source not in patterns:
        raise DataError(f"Unknown MovieLens-1M source {source!r}; use one of {list(patterns)}.")
    main = _locate(path, patterns[source], "MovieLens-1M ratings")
    kind = source if source != "auto" else ("ratings" if ".dat" in main.suffixes else "sequence")
    if kind == "ratings":
        frame = _read_ratings_dat(main)
    else:
        lines = _read_lines(main)
        frame = _lines_frame(lines)
    movies = _sibling(main, "movies.dat")
    items = _read_movies_dat(movies) if movies is not None else None
    meta = _meta(main, movies, time_unit="s" if kind == "ratings" else None)
    return Interactions(frame, items=items, name="ml-1m", meta=meta)


def _read_atomic(path: Path, columns: Mapping[str, str], fix: str) -> pd.DataFrame:
    """A RecBole atomic file (tab-separated, typed header like `user_id:token`), types dropped, selected."""
    frame = _read_csv(path, fix, sep="\t", quoting=csv.QUOTE_NONE)
    return _select(frame.set_axis([str(c).split(":")[0] for c in frame.columns], axis=1), columns, path, fix)


def _read_u_data(path: Path) -> pd.DataFrame:
    """GroupLens `u.data`: tab-separated `user item rating timestamp`, no header."""
    fix = "each line of u.data must be user id, item id, rating, timestamp: four integers separated by tabs"
    frame = _read_headerless(path, "\t", 4, fix).set_axis(["user_id", "item_id", "rating", "timestamp"], axis=1)
    ints = ("user_id", "item_id", "timestamp")
    return _coerce(frame, path, fix, ints=ints, floats=("rating",), header_lines=0)


def _read_u_item(path: Path) -> pd.DataFrame:
    """GroupLens `u.item` (latin-1, '|'-separated, 19 genre flags) as an items table; genres joined by '|'."""
    fix = "each line of u.item must be id|title|release date|video date|IMDb URL|19 genre flags (latin-1)"
    raw = _read_headerless(path, "|", 5 + len(ML_GENRES_100K), fix, encoding="latin-1")
    ints = (0, *range(5, raw.shape[1]))
    table = _coerce(raw, path, fix, ints=ints, texts=(1,), header_lines=0, encoding="latin-1")
    rows, cols = np.nonzero(table.iloc[:, 5:].to_numpy() == 1)
    marked = pd.Series(np.asarray(ML_GENRES_100K)[cols]).groupby(rows).agg("|".join)
    genres = marked.reindex(range(len(table)), fill_value="")
    return _items(table[0], table[1], genres)


def _read_recbole_inter(path: Path) -> pd.DataFrame:
    """RecBole `ml-100k.inter` (`user_id:token item_id:token rating:float timestamp:float`)."""
    fix = "the RecBole .inter file must have the typed header user_id:token, item_id:token, rating, timestamp"
    names = {"user_id": "user_id", "item_id": "item_id", "rating": "rating", "timestamp": "timestamp"}
    frame = _read_atomic(path, names, fix)
    return _coerce(frame, path, fix, ints=("user_id", "item_id", "timestamp"), floats=("rating",))


def _read_recbole_item(path: Path) -> pd.DataFrame:
    """RecBole `ml-100k.item` as an items table; its space-separated `class` genres are joined by '|'."""
    fix = "the RecBole .item file must have the typed header item_id, movie_title, class (genres)"
    table = _read_atomic(path, {"item_id": "item_id", "title": "movie_title", "category": "class"}, fix)
    table = _coerce(table, path, fix, ints=("item_id",))
    return _items(table["item_id"], table["title"], table["category"].fillna("").str.replace(" ", "|"))


def read_movielens_100k(path: PathLike) -> Interactions:
    """MovieLens-100k from GroupLens `u.data` (+ `u.item`) or RecBole `ml-100k.inter` (+ `ml-100k.item`); a
    folder prefers `u.data`. Items carry `title` and `category` (genres joined by '|')."""
    main = _locate(path, ["u.data", "*.inter"], "MovieLens-100k ratings (u.data or ml-100k.inter)")
    if ".inter" in main.suffixes:
        frame = _read_recbole_inter(main)
        item_file = _sibling(main, main.name.split(".inter")[0] + ".item")
        items = _read_recbole_item(item_file) if item_file is not None else None
    else:
        frame = _read_u_data(main)
        item_file = _sibling(main, "u.item")
        items = _read_u_item(item_file) if item_file is not None else None
    return Interactions(frame, items=items, name="ml-100k", meta=_meta(main, item_file, time_unit="s"))


# --- RetailRocket, XMRec and custom tables ---

RETAILROCKET_EVENTS = ("view", "addtocart", "transaction")


def read_retailrocket(path: PathLike, events: Collection[str] | None = None) -> Interactions:
    """RetailRocket `events.csv` (Kaggle schema `timestamp,visitorid,event,itemid,transactionid`) with its
    `event` column; `events` keeps only those event types. Timestamps stay integer unix **milliseconds**."""
    main = _locate(path, ["events.csv", "events*.csv"], "RetailRocket events.csv")
    fix = "the file must be RetailRocket's events.csv, header timestamp,visitorid,event,itemid,transactionid"
    frame = _select(
        _read_csv(main, fix),
        {"user_id": "visitorid", "item_id": "itemid", "timestamp": "timestamp", "event": "event"},
        main,
        fix,
    )
    frame = _coerce(frame, main, fix, ints=("user_id", "item_id", "timestamp"), texts=("event",))
    if events is not None:
        events = {events} if isinstance(events, str) else set(events)
        unknown = sorted(events - set(RETAILROCKET_EVENTS))
        if unknown:
            raise DataError(f"Unknown RetailRocket event type(s) {unknown}; choose from {list(RETAILROCKET_EVENTS)}.")
        frame = frame[frame["event"].isin(events)]
        if frame.empty:
            raise _error(main, f"has no events of type {sorted(events)}", "choose event types present in the file")
    meta = _meta(main, time_unit="ms")
    return Interactions(frame.reset_index(drop=True), name="retailrocket", meta=meta)


def read_retailrocket_sessions(path: PathLike) -> Interactions:
    """The SR-GTM RetailRocket sample: tab-separated `timestamp user_id item_id session_id` (unix seconds,
    views only). `session_id` is not kept: `Interactions` has no session column."""
    main = _locate(path, ["sample_retailrocket.tsv", "*.tsv"], "RetailRocket session sample (.tsv)")
    fix = "the file must be tab-separated with header timestamp, user_id, item_id, session_id"
    frame = _select(
        _read_csv(main, fix, sep="\t"),
        {"user_id": "user_id", "item_id": "item_id", "timestamp": "timestamp"},
        main,
        fix,
    )
    frame = _coerce(frame, main, fix, ints=("user_id", "item_id", "timestamp"))
    return Interactions(frame, name="retailrocket-sessions", meta=_meta(main, time_unit="s"))


XMREC_SUFFIX = "_5core.txt"


def _xmrec_files(path: Path, markets: Collection[str] | None) -> dict[str, Path]:
    if path.is_file():
        files = {path.name.split("_")[0]: path}
    else:
        found = _matches(path, f"*{XMREC_SUFFIX}") if path.is_dir() else []
        files = {p.name.split("_")[0]: p for p in found}
    if not files:
        raise DataError(f"{path} holds no XMRec `<market>{XMREC_SUFFIX}[.gz]` files; pass the folder that has them.")
    if markets is None:
        return files
    unknown = sorted(set(markets) - set(files))
    if unknown:
        raise DataError(f"XMRec market(s) {unknown} are not in {path}; available: {sorted(files)}.")
    return {m: files[m] for m in sorted(markets)}


def read_xmrec(path: PathLike, markets: Collection[str] | None = None) -> Interactions:
    """XMRec (FOREC preparation): a folder of `<market>_5core.txt` files (`userId itemId rate date`) as one
    log with a `market` column and the date as unix seconds; rows keep file order (not chronological).

    User ids become `"<market>:<userId>"`: one id string in two markets is not known to be the same person.
    Item ids (ASINs) stay shared across markets, which is what links them.
    """
    fix = "each XMRec file must be space-separated with header `userId itemId rate date` (date as YYYY-MM-DD)"
    parts = []
    files = _xmrec_files(Path(path).expanduser(), markets)
    for market, file in sorted(files.items()):
        frame = _select(
            _read_csv(file, fix, sep=" "),
            {"user_id": "userId", "item_id": "itemId", "rating": "rate", "timestamp": "date"},
            file,
            fix,
        )
        frame = _coerce(frame, file, fix, texts=("user_id", "item_id"), floats=("rating",), dates=("timestamp",))
        parts.append(frame.assign(user_id=market + ":" + frame["user_id"].astype(str), market=market))
    frame = pd.concat(parts, ignore_index=True)
    return Interactions(frame, name="xmrec", meta=_meta(*files.values(), time_unit="s"))


def _table_sep(path: Path, sep: str | None) -> str:
    """The separator of a text table: `sep`, else by suffix (.csv, .tsv, .tab), else sniffed from the header."""
    if sep is not None:
        return sep
    suffix = path.suffixes[-2] if path.suffix == ".gz" and len(path.suffixes) > 1 else path.suffix
    known = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
    if suffix in known:
        return known[suffix]
    try:
        header = _line_at(path, 1)
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise _unreadable(path, exc) from None
    try:
        return csv.Sniffer().sniff(header).delimiter
    except csv.Error:
        problem = "the separator cannot be told from the header"
        raise _error(path, problem, "pass sep=..., e.g. sep=';'", 1, header) from None


def _fields(line: str, sep: str) -> int:
    """How many fields a line has, split as pandas splits it (a longer `sep` is a regular expression)."""
    if len(sep) == 1:
        return len(next(csv.reader([line], delimiter=sep)))
    return len(re.split(sep, line.strip()))


def _check_widths(frame: pd.DataFrame, path: Path, sep: str) -> None:
    """Refuse a line with fewer fields than the header: pandas fills its last columns with NaN, which would turn
    a broken line into an empty timestamp (only rows whose last column is empty can be short)."""
    rows = np.flatnonzero(frame.iloc[:, -1].isna().to_numpy())
    for lineno, line in _data_lines(path, rows, 1, "utf-8"):
        found = _fields(line, sep)
        if found < frame.shape[1]:
            problem = f"the line has {found} field(s), the header has {frame.shape[1]}"
            fix = "give every line all the header's fields (an empty one is nothing between two separators)"
            raise _error(path, problem, fix, lineno, line)


def _raw_ids(frame: pd.DataFrame, path: Path, sep: str, ids: list[str]) -> pd.DataFrame:
    """`frame` with ID cells that pandas took for missing values (`NA`, `null`, `nan`...) read back as written;
    only blank cells stay missing."""
    if not frame[ids].isna().any().any():
        return frame
    raw = pd.read_csv(path, sep=sep, usecols=ids, dtype=str, keep_default_na=False, engine=_engine(sep))
    return frame.assign(**{col: raw[col].where(raw[col].str.strip() != "") for col in ids})


INT_ID = r"0|-?[1-9]\d{0,17}"


def _int_ids(frame: pd.DataFrame, ids: list[str], path: Path | None, text_file: bool) -> pd.DataFrame:
    """`ids` columns as int64; only plainly written integers qualify, so no two spellings (`007`, `7`) merge."""
    out = frame.copy()
    for col in ids:
        if pd.api.types.is_integer_dtype(frame[col]):
            continue
        text = frame[col].astype(str)
        bad = np.flatnonzero(~text.str.fullmatch(INT_ID).to_numpy(dtype=bool))
        if bad.size:
            value = frame[col].iloc[bad[0]]
            problem = (
                f"column {col!r} is {value!r}, not an integer written plainly (no leading zeros, sign '+', spaces "
                "or decimals), so as an int ID it could merge with another spelling"
            )
            fix = f"fix the value, or read {col!r} as string IDs (leave it out of int_ids)"
            if text_file:
                raise _error(path, problem, fix, *_data_line(path, int(bad[0]), 1, "utf-8"))
            raise DataError(f"{path or 'The table'}, index {row_label(frame.index, bad[0])!r}: {problem}; fix: {fix}.")
        out[col] = text.astype("int64")
    return out


def _engine(sep: str) -> str:
    return "c" if len(sep) == 1 or sep == r"\s+" else "python"


def read_table(
    source: pd.DataFrame | PathLike,
    columns: Mapping[str, str] | None = None,
    sep: str | None = None,
    name: str = "custom",
    items: pd.DataFrame | None = None,
    timestamps: str = "strict",
    int_ids: Collection[str] = (),
) -> Interactions:
    """Custom data from a DataFrame, a CSV/TSV (separator from the suffix, given, or sniffed) or a parquet
    file; `columns` maps our names (user_id, item_id, timestamp, event, market, rating) to yours.

    User and item IDs of a text file stay the strings they were written as (`007` and `7` are two items) unless
    named in `int_ids` (e.g. `["item_id"]`), which reads them as integers; a DataFrame's or parquet file's IDs
    keep their values. `timestamps` is the policy for missing, text or negative timestamps: "strict" refuses
    them, "parse_dates" reads ISO 8601 dates, "drop_invalid" drops those rows (see `clean_timestamps`).
    Datetime timestamp columns become unix seconds; other timestamp values are kept as they are.
    """
    columns = dict(columns or {})
    unknown = sorted(set(int_ids) - set(REQUIRED_COLUMNS))
    if unknown:
        raise DataError(f"int_ids={sorted(int_ids)} names {unknown}; it takes only our ID columns {REQUIRED_COLUMNS}.")
    mapped = {ours: columns.get(ours, ours) for ours in REQUIRED_COLUMNS}
    path = None if isinstance(source, pd.DataFrame) else Path(source).expanduser()
    text_file = path is not None and not {".parquet", ".pq"} & set(path.suffixes)
    fix = "check the separator (sep=...) and the file format"
    if path is None:
        frame = source
    elif not path.is_file():
        raise DataError(f"{path} does not exist; pass an existing CSV/TSV/parquet file or a DataFrame.")
    elif not text_file:
        frame = pd.read_parquet(path)
    else:
        sep = _table_sep(path, sep)
        ids = {theirs: str for theirs in mapped.values()}
        frame = _read_csv(path, fix, sep=sep, engine=_engine(sep), dtype=ids)
        _check_widths(frame, path, sep)
    missing = {ours: theirs for ours, theirs in mapped.items() if theirs not in frame.columns}
    if missing:
        have = list(frame.columns)
        example = {ours: have[i] if i < len(have) else "<column>" for i, ours in enumerate(REQUIRED_COLUMNS)}
        raise DataError(
            f"{path or 'The table'} has no column {sorted(missing.values())} for {sorted(missing)}; it has "
            f"{have}. Pass the mapping from our names to yours, e.g. read_table(..., columns={example})."
        )
    if text_file:
        frame = _raw_ids(frame, path, sep, list(dict.fromkeys(mapped.values())))
        frame = _coerce(frame, path, "fill in or drop the rows without user or item", texts=tuple(mapped.values()))
    frame = _int_ids(frame, [mapped[ours] for ours in int_ids], path, text_file)
    time_col = columns.get("timestamp", "timestamp")
    dates = time_col in frame.columns and holds_dates(frame[time_col], timestamps)
    if time_col in frame.columns:
        lines = (lambda rows: [f"line {n}" for n, _ in _data_lines(path, rows, 1, "utf-8")]) if text_file else None
        frame = clean_timestamps(frame, time_col, timestamps, str(path or "The table"), lines)
    interactions = Interactions.from_frame(frame, columns=columns, items=items, name=name)
    interactions.meta.update(_meta(path, time_unit="s" if dates else None))
    return interactions


# --- Registry and load_dataset ---


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its name in the dataset folder, official URL and sha256 (None: recorded on
    first use). `unzip_strip` marks a zip to extract into the dataset folder, minus N leading folders."""

    name: str
    url: str
    sha256: str | None = None
    unzip_strip: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A known dataset: its folder name inside a datasets folder, its reader, the glob patterns of the files
    that show a folder holds it, where to download it from, and its licence note."""

    name: str
    folder: str
    read: Callable[[Path], Interactions]
    markers: tuple[str, ...]
    files: tuple[RemoteFile, ...] = ()
    licence: str = ""
    manual: str = ""
    embedded: Path | None = None


def _github(repo: str, commit: str, path: str, sha256: str, name: str | None = None) -> RemoteFile:
    """A file pinned to a commit of a public GitHub repository, with the sha256 of its content."""
    return RemoteFile(
        name or path.rsplit("/", 1)[-1], f"https://raw.githubusercontent.com/{repo}/{commit}/{path}", sha256
    )


def _grouplens(folder: str) -> RemoteFile:
    """An official GroupLens zip (no published checksum: trusted on first use); its top folder is dropped."""
    url = f"https://files.grouplens.org/datasets/movielens/{folder}.zip"
    return RemoteFile(f"{folder}.zip", url, None, unzip_strip=1)


ICLREC = ("salesforce/ICLRec", "2890e6c3ff6a22c6699fc19cb863b66786c1cde4")
S3REC = ("aHuiWang/CIKM2020-S3Rec", "49a890dcb516c9ed3126564495234ea74d5cd566")
TICOSEREC = ("KingGugu/TiCoSeRec", "302b2959f27bb16bb77acae5a471de82819bd1bd")
FOREC = ("hamedrab/FOREC", "c10cef9e1823474e71e6300243cf7cd643e2f7af")

GROUPLENS_NO_REDISTRIBUTION = (
    "GroupLens MovieLens terms: research use only, no redistribution without permission, no commercial use; "
    "cite Harper & Konstan, ACM TiiS 5(4) 2015."
)
AMAZON_LICENCE = (
    "Amazon review data (McAuley, UCSD), research use; cite He & McAuley WWW 2016 / McAuley et al. "
    "SIGIR 2015 and the S3-Rec (CIKM 2020) / ICLRec (WWW 2022) preparation."
)
XMREC_SHA256 = {
    "ca": "a8b2f9c2e4f0934bad03ebb6127817263cfd79c7e416ca79d8ab9696c3918bcb",
    "de": "d4058d929a880c387efd2f330d8010ec25904f53ef40b3d722487dfd182d2632",
    "fr": "48dc17f037eb13fce65ad72428cedf691d3aade016229699045d2f05806775fb",
    "in": "56701302e04b9a1e2e690ab8687e4be0d42d154c6d99bb87fd2d9b882d517deb",
    "jp": "bbf2e3a713385bdc25abfcdc6a99e48902ed9870f1f2943ff3c6152ff3b64e1c",
    "mx": "3178c95adf0b57980b89d1b3f38bea1a2741083a589a6ae7e3807511749d179f",
    "uk": "757011193b2878c08d3589c4ec0aecff015f898e56b22c412b95529707adf0d8",
}

DATASETS: dict[str, DatasetSpec] = {
    "ml-latest-small": DatasetSpec(
        "ml-latest-small",
        "ml-latest-small",
        read_movielens_latest_small,
        ("ratings.csv",),
        (_grouplens("ml-latest-small"),),
        "GroupLens latest-small terms: research use, redistribution allowed under the same terms, no "
        "commercial use without permission; cite Harper & Konstan, ACM TiiS 5(4) 2015.",
        embedded=EMBEDDED_ML_LATEST_SMALL,
    ),
    "ml-1m": DatasetSpec(
        "ml-1m",
        "ml-1m",
        read_movielens_1m,
        ("ratings.dat", "ml-1m.txt", "ratings*.dat"),
        (_grouplens("ml-1m"),),
        GROUPLENS_NO_REDISTRIBUTION,
    ),
    "ml-100k": DatasetSpec(
        "ml-100k",
        "ml-100k",
        read_movielens_100k,
        ("u.data", "*.inter"),
        (_grouplens("ml-100k"),),
        GROUPLENS_NO_REDISTRIBUTION,
    ),
    "beauty": DatasetSpec(
        "beauty",
        "Beauty",
        partial(read_amazon, "beauty"),
        ("Beauty.txt",),
        (
            _github(*ICLREC, "data/Beauty.txt", "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"),
            _github(
                *S3REC,
                "data/Beauty_item2attributes.json",
                "129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4",
            ),
            _github(
                *TICOSEREC,
                "data/Beauty/Beauty_time_org_rank.txt",
                "4e6a6e30f9dba1985ad9adae79a891df6b403e2132f0422a6f6e88f67d1fcc75",
                name="Beauty_time.txt",
            ),
        ),
        AMAZON_LICENCE + " Timestamps from TiCoSeRec (Apache-2.0; cite Dang et al. AAAI 2023).",
    ),
    "sports": DatasetSpec(
        "sports",
        "Sports_and_Outdoors",
        partial(read_amazon, "sports"),
        ("Sports_and_Outdoors.txt",),
        (
            _github(
                *ICLREC,
                "data/Sports_and_Outdoors.txt",
                "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
            ),
            _github(
                *S3REC,
                "data/Sports_and_Outdoors_item2attributes.json",
                "7fb10733ac4f1811384a52144cdefa7fcc7536fa80a7232c5da9bd789155c34b",
            ),
            _github(
                *TICOSEREC,
                "data/Sports/Sports_time_org_rank.txt",
                "c442ed4744f1de95b00744861bbaa503fcc98380d8b7ec08d52231450356c3a2",
                name="Sports_and_Outdoors_time.txt",
            ),
        ),
        AMAZON_LICENCE + " Timestamps from TiCoSeRec (Apache-2.0; cite Dang et al. AAAI 2023).",
    ),
    "toys": DatasetSpec(
        "toys",
        "Toys_and_Games",
        partial(read_amazon, "toys"),
        ("Toys_and_Games.txt",),
        (
            _github(
                *ICLREC,
                "data/Toys_and_Games.txt",
                "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
            ),
            _github(
                *S3REC,
                "data/Toys_and_Games_item2attributes.json",
                "d371acd25101eedac04afc727626464b7acec770c4eda708705d51eb76eb1ad0",
            ),
        ),
        AMAZON_LICENCE,
    ),
    "yelp": DatasetSpec(
        "yelp",
        "Yelp",
        read_yelp,
        ("Yelp.txt",),
        (
            _github(*ICLREC, "data/Yelp.txt", "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed"),
            _github(
                *S3REC,
                "data/Yelp_item2attributes.json",
                "f25acd5e1e680e0b22fd4e3f4fb6be4b2a7461e9222610616e3e1ee6702dd58d",
            ),
            _github(
                *TICOSEREC,
                "data/Yelp-A/Yelp_item_org_rank.txt",
                "c192f158659e118070bf0cd2dfe4c01c15295a09ef2ada1ccadf0bab06e4c19e",
                name="Yelp_ticoserec_item.txt",
            ),
            _github(
                *TICOSEREC,
                "data/Yelp-A/Yelp_time_org_rank.txt",
                "79b0f02a3dcbbc8799fe79725ccbba55735212e81247f7595385cb359fd95de0",
                name="Yelp_ticoserec_time.txt",
            ),
        ),
        "Yelp Open Dataset terms (academic, non-commercial use; https://www.yelp.com/dataset); cite S3-Rec "
        "(CIKM 2020) / ICLRec (WWW 2022), and TiCoSeRec (AAAI 2023) for the timed twin.",
    ),
    "retailrocket": DatasetSpec(
        "retailrocket",
        "retailrocket",
        read_retailrocket,
        # Only the full file marks a folder, so a sample beside it (events_sample_*.csv) is never taken for the
        # dataset by name: a run or zoo build called `retailrocket` trains on all of it. Samples go by `path=`.
        ("events.csv",),
        (),
        "Retail Rocket's Kaggle dataset (CC BY-NC-SA 4.0 as far as known): non-commercial, share alike.",
        manual="download events.csv from https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset "
        "(needs a Kaggle login) and put it into {folder}; a sample of it is read only when passed as "
        "data.path / path=",
    ),
    "xmrec": DatasetSpec(
        "xmrec",
        "xmrec",
        read_xmrec,
        (f"*{XMREC_SUFFIX}",),
        tuple(
            _github(*FOREC, f"DATA/proc_data/{market}{XMREC_SUFFIX}", digest) for market, digest in XMREC_SHA256.items()
        ),
        "XMarket (Bonab et al., Cross-Market Product Recommendation, CIKM 2021; https://xmrec.github.io/); "
        "no licence file, cite the paper.",
    ),
}


def _spec(name: str) -> DatasetSpec:
    spec = DATASETS.get(name.lower())
    if spec is None:
        raise DataError(f"Unknown dataset {name!r}; known datasets: {sorted(DATASETS)}.")
    return spec


def cache_root(cache_dir: PathLike | None = None) -> Path:
    """The download cache: `cache_dir`, else `$SEQREC_CACHE`, else `~/.cache/lightning_seqrec`."""
    root = cache_dir or os.environ.get("SEQREC_CACHE") or Path.home() / ".cache" / "lightning_seqrec"
    return Path(root).expanduser()


def _holds(folder: Path, spec: DatasetSpec) -> bool:
    return folder.is_dir() and any(_matches(folder, pattern) for pattern in spec.markers)


def _local_folders(spec: DatasetSpec, cache_dir: PathLike | None) -> list[tuple[str, Path]]:
    """Where a dataset is looked for by name, in order, each with its label: `$SEQREC_DATA_DIR/<folder>` when set,
    the cache, the embedded copy."""
    data_dir = os.environ.get("SEQREC_DATA_DIR")
    folders = [("$SEQREC_DATA_DIR", Path(data_dir).expanduser() / spec.folder)] if data_dir else []
    folders.append(("cache", cache_root(cache_dir) / spec.folder))
    return folders + ([("embedded copy", spec.embedded)] if spec.embedded else [])


def find_dataset(name: str, cache_dir: PathLike | None = None) -> Path | None:
    """The folder `load_dataset(name)` would read without downloading, or None when no local folder holds it."""
    spec = _spec(name)
    return next((folder for _, folder in _local_folders(spec, cache_dir) if _holds(folder, spec)), None)


def _download_into(spec: DatasetSpec, folder: Path) -> None:
    for remote in spec.files:
        fetched = download_file(remote.url, folder / remote.name, remote.sha256)
        if remote.unzip_strip is not None:
            extract_zip(fetched, folder, strip_components=remote.unzip_strip)


def load_dataset(
    name: str, path: PathLike | None = None, download: bool = True, cache_dir: PathLike | None = None
) -> Interactions:
    """Load a registered dataset from, in order: `path` (file or folder), `$SEQREC_DATA_DIR/<folder>`, the
    cache (`cache_dir`, `$SEQREC_CACHE` or `~/.cache/lightning_seqrec`, then `<folder>`), the embedded copy
    (ml-latest-small only), or a download into the cache; otherwise a DataError listing where it looked."""
    spec = _spec(name)
    if path is not None:
        given = Path(path).expanduser()
        if not given.exists():
            raise DataError(f"path {given} given for dataset {spec.name!r} does not exist.")
        return spec.read(given)
    looked = ["path argument: not given"]
    cache = cache_root(cache_dir) / spec.folder
    if not os.environ.get("SEQREC_DATA_DIR"):
        looked.append("$SEQREC_DATA_DIR: not set")
    for label, folder in _local_folders(spec, cache_dir):
        if _holds(folder, spec):
            return spec.read(folder)
        looked.append(f"{label}: {folder} (none of {list(spec.markers)} there)")
    failure = None
    if download and spec.files:
        try:
            _download_into(spec, cache)
        except DataError as exc:
            failure = exc
            looked.append(f"download into {cache}: failed: {exc}")
        else:
            return spec.read(cache)
    elif spec.files:
        looked.append("download: not tried (download=False)")
    else:
        looked.append("download: not possible for this dataset")
    third = (
        spec.manual.format(folder=cache)
        if spec.manual
        else f"allow the download (download=True; from {', '.join(f.url for f in spec.files)}) or copy the "
        f"files into {cache}"
    )
    raise DataError(
        f"Dataset {spec.name!r} was not found. Looked at:\n  - "
        + "\n  - ".join(looked)
        + f"\nFix it in one of three ways:\n  1. load_dataset({spec.name!r}, path=...) with a file or folder;"
        f"\n  2. set SEQREC_DATA_DIR to a folder that holds {spec.folder}/ (laid out like shared/data);"
        f"\n  3. {third}."
        f"\nLicence: {spec.licence}"
    ) from failure
