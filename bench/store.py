"""The results database (SQLite): the source of truth of a run directory.

One row per dataset × image × codec × quality, inserted as work finishes and
never duplicated (primary key); tables and reports are derived from it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from bench.crops import CROP, CROP_ORIGINAL, ORIGINAL
from bench.metrics import METRICS

DB_NAME = "results.sqlite"

COLUMNS: dict[str, str] = {
    "dataset": "TEXT NOT NULL",
    "image": "TEXT NOT NULL",
    "codec": "TEXT NOT NULL",
    "quality": "REAL NOT NULL",
    "label": "TEXT",
    "split": "TEXT",
    "image_sha256": "TEXT",  # of the image file when measured: a file replaced since is measured again
    "seen": "INTEGER",  # 1: a committed model trained or was selected on this image; excluded from scores
    "height": "INTEGER",
    "width": "INTEGER",
    "codec_version": "TEXT",
    "bytes": "INTEGER",
    "header_bytes": "INTEGER",
    "bpp": "REAL",
    "bpp_payload": "REAL",
    **{name: "REAL" for name in METRICS},
    "encode_s": "REAL",
    "decode_s": "REAL",
    "predicted": "TEXT",
    "predicted_adapted": "TEXT",  # by the classifier adapted to this codec (`bench.tasks.adapt`), when asked for
    "predicted_original": "TEXT",
    "classifier": "TEXT",  # which classifier made the fixed predictions (`classifier.identity`): one per run
    "note": "TEXT",
    "error": "TEXT",
}
_DTYPES = {"TEXT": "object", "REAL": "float64", "INTEGER": "Int64"}  # Int64: integers that may be NULL
KEY = ("dataset", "image", "codec", "quality")
UNRECORDED = "an unrecorded classifier (rows written before predictions were tagged)"
REPRODUCIBLE = (*KEY, "label", "split", "seen", "image_sha256", "bytes", "header_bytes", *METRICS, "error")
"""Columns that the same work gives again exactly, on any executor (timings, by nature, are not among them)."""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS results (
    {", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())},
    PRIMARY KEY ({", ".join(KEY)})
);
CREATE TABLE IF NOT EXISTS crops (
    dataset TEXT NOT NULL, image TEXT NOT NULL, codec TEXT NOT NULL, quality REAL NOT NULL, png BLOB NOT NULL,
    PRIMARY KEY (dataset, image, codec, quality)
);
CREATE TABLE IF NOT EXISTS latent (
    dataset TEXT NOT NULL, arch TEXT NOT NULL, quality INTEGER NOT NULL, result TEXT NOT NULL, tsne_png BLOB,
    PRIMARY KEY (dataset, arch, quality)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    info TEXT NOT NULL
);
"""


class UnusableDatabase(sqlite3.DatabaseError):
    """A results database that is corrupt, empty or not a bench database; the message names the file."""


class ResultStore:
    """A results database at `path`: created when missing, or opened read-only (`read_only`) to report on it.

    Every open checks the file (SQLite's quick_check): a corrupt database is
    refused with a clear error instead of being read as fewer rows. Read-only
    opens never write, so a copied or read-only run directory can be reported
    and checked, and an emptied database is refused rather than reported as
    a run without rows.
    """

    def __init__(self, path: Path, *, read_only: bool = False):
        self.path = Path(path)
        try:
            self._db = self._connect(read_only)
            problem = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise UnusableDatabase(f"{self.path}: corrupt results database ({problem}); "
                                       "restore it from a copy, or move it away to start the run again")  # fmt: skip
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if read_only and "results" not in tables:
                raise UnusableDatabase(f"{self.path}: no results table (an empty file, or not a bench database)")
            # a writing open would re-create it empty, and a resume would then check its selection against nothing
            if "results" in tables and "runs" not in tables:
                raise UnusableDatabase(f"{self.path}: no runs table (the record of the run's invocations is gone); "
                                       "restore it from a copy, or move it away to start the run again")  # fmt: skip
            if read_only:
                return
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            present = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
            for name in COLUMNS.keys() - present:  # a database written by an older version: add new columns
                self._db.execute(f"ALTER TABLE results ADD COLUMN {name} {COLUMNS[name].replace(' NOT NULL', '')}")
        except UnusableDatabase:
            raise
        except sqlite3.DatabaseError as exc:
            raise UnusableDatabase(f"{self.path}: not a usable results database ({exc})") from None

    def _connect(self, read_only: bool) -> sqlite3.Connection:
        if not read_only:
            return sqlite3.connect(self.path)
        if self.path.exists() and not self.path.is_file():
            raise UnusableDatabase(f"{self.path}: not a file, so not a results database")
        if not self.path.is_file():
            raise UnusableDatabase(f"{self.path.parent}: no {self.path.name} here; give the --out directory of a run")
        uri = self.path.resolve().as_uri()
        try:
            connection = sqlite3.connect(f"{uri}?mode=ro", uri=True)
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return connection
        except sqlite3.OperationalError:
            # a WAL database in a read-only folder: SQLite cannot create its shared-memory file; nobody
            # writes such a folder, so the file can be read as immutable
            return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def done(self, dataset: str) -> tuple[set[tuple[str, str, float]], set[tuple[str, str, float]]]:
        """(image, codec, quality) of every row stored for `dataset`: those that succeeded, and those that failed."""
        succeeded, failed = set(), set()
        for image, codec, quality, error in self._db.execute(
                "SELECT image, codec, quality, error FROM results WHERE dataset = ?", (dataset,)):  # fmt: skip
            (failed if error is not None else succeeded).add((image, codec, quality))
        return succeeded, failed

    def fill_seen(self, dataset: str, seen: Mapping[str, bool]) -> int:
        """Record on rows that predate it (NULL) whether a committed model trained or was selected on their image;
        how many rows were filled."""
        with self._db:
            cursor = self._db.executemany(
                "UPDATE results SET seen = ? WHERE dataset = ? AND image = ? AND seen IS NULL",
                [(int(flag), dataset, image) for image, flag in seen.items()],
            )
            return cursor.rowcount

    def classifiers(self, dataset: str) -> set[str]:
        """The classifiers (`classifier.identity`) whose predictions are stored for `dataset`; `UNRECORDED` stands
        for predictions written before rows named their classifier."""
        cursor = self._db.execute(
            "SELECT DISTINCT COALESCE(classifier, ?) FROM results WHERE dataset = ? AND predicted_original IS NOT NULL",
            (UNRECORDED, dataset),
        )
        return {identity for (identity,) in cursor}

    def codec_versions(self, dataset: str) -> dict[tuple[str, float], set[str]]:
        """(codec, quality) → the versions (`Codec.version_at`: the library, and a learned codec's checkpoint) of its
        stored rows of `dataset`."""
        cursor = self._db.execute(
            "SELECT DISTINCT codec, quality, codec_version FROM results WHERE dataset = ? AND codec_version IS NOT NULL",
            (dataset,),
        )
        versions: dict[tuple[str, float], set[str]] = {}
        for codec, quality, version in cursor:
            versions.setdefault((codec, float(quality)), set()).add(version)
        return versions

    def changed_images(self, dataset: str, digests: Mapping[str, str | None]) -> set[str]:
        """Images of `dataset` whose stored rows were measured on other file contents than `digests` say."""
        cursor = self._db.execute(
            "SELECT DISTINCT image, image_sha256 FROM results WHERE dataset = ? AND image_sha256 IS NOT NULL", (dataset,)
        )
        return {image for image, digest in cursor if image in digests and digests[image] != digest}

    def forget(self, dataset: str, images: Iterable[str]) -> int:
        """Delete every row of these images (to measure them again); how many rows went."""
        keys = [(dataset, image) for image in images]
        with self._db:
            cursor = self._db.executemany("DELETE FROM results WHERE dataset = ? AND image = ?", keys)
            forgotten = cursor.rowcount
            self._db.executemany("DELETE FROM crops WHERE dataset = ? AND image = ?", keys)  # the gallery's too
        return forgotten

    def add(self, rows: Iterable[Mapping]) -> int:
        """Insert `rows` (and their gallery crops) in one transaction; how many were written.

        A row already stored is left as it is, unless it is an error row: a resume measures failed rows again, and
        the new row replaces the error only once it exists (a resume stopped before keeps the error on record).
        """
        rows = list(rows)
        names = list(COLUMNS)
        sql = (f"INSERT INTO results ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
               f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET "
               + ", ".join(f"{name} = excluded.{name}" for name in names if name not in KEY)
               + " WHERE results.error IS NOT NULL")  # fmt: skip
        crops = [(row["dataset"], row["image"], codec, quality, row[field]) for row in rows
                 for field, codec, quality in ((CROP, row["codec"], row["quality"]), (CROP_ORIGINAL, ORIGINAL, 0.0))
                 if row.get(field)]  # fmt: skip
        with self._db:
            cursor = self._db.executemany(sql, ([row.get(name) for name in names] for row in rows))
            written = cursor.rowcount
            self._db.executemany("INSERT OR IGNORE INTO crops VALUES (?, ?, ?, ?, ?)", crops)
        return written

    def crops(self) -> pd.DataFrame:
        """Gallery crops: dataset, image, codec ("" for the original), quality, png (none in older databases)."""
        columns = ["dataset", "image", "codec", "quality", "png"]
        if not self._has_table("crops"):
            return pd.DataFrame(columns=columns)
        return pd.read_sql_query(f"SELECT {', '.join(columns)} FROM crops ORDER BY dataset, image, codec, quality", self._db)

    def frame(self) -> pd.DataFrame:
        """All rows as a DataFrame, in key order, each column of its schema's type even when all values are NULL."""
        frame = pd.read_sql_query(f"SELECT * FROM results ORDER BY {', '.join(KEY)}", self._db)
        for name, kind in COLUMNS.items():
            if name not in frame:  # a database written before this column existed (read-only: not migrated)
                frame[name] = None
            try:
                frame[name] = frame[name].astype(_DTYPES[kind.split()[0]])
            except (TypeError, ValueError):  # SQLite is typeless: a REAL in an INTEGER column stays a float
                frame[name] = pd.to_numeric(frame[name], errors="coerce")
        return frame

    def _has_table(self, name: str) -> bool:  # read-only opens of older databases do not create new tables
        return bool(self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone())

    def add_latent(self, result: Mapping, tsne_png: bytes | None) -> None:
        """Store (or replace) one latent-vs-pixel classification result (`bench.tasks.latent`) and its t-SNE plot."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO latent VALUES (?, ?, ?, ?, ?)",
                             (result["dataset"], result["arch"], int(result["quality"]), json.dumps(result), tsne_png))  # fmt: skip

    def latent(self) -> list[dict]:
        """Latent-vs-pixel results, each with its ``tsne_png`` (bytes or None)."""
        if not self._has_table("latent"):
            return []
        cursor = self._db.execute("SELECT result, tsne_png FROM latent ORDER BY dataset, arch, quality")
        return [{**json.loads(result), "tsne_png": png} for result, png in cursor]

    def set_column(self, dataset: str, column: str, values: Mapping[tuple[str, str, float], object]) -> int:
        """Set `column` of existing rows of `dataset`, by (image, codec, quality), in one transaction; rows changed."""
        if column not in COLUMNS or column in KEY:
            raise ValueError(f"{column!r} is not a settable results column")
        with self._db:
            cursor = self._db.executemany(
                f"UPDATE results SET {column} = ? WHERE dataset = ? AND image = ? AND codec = ? AND quality = ?",
                [(value, dataset, *key) for key, value in values.items()],
            )
        return cursor.rowcount

    def add_run(self, started: str, info: Mapping) -> None:
        with self._db:
            self._db.execute("INSERT INTO runs (started, info) VALUES (?, ?)", (started, json.dumps(info)))

    def runs(self) -> list[dict]:
        """Metadata of every invocation that wrote to this database, oldest first."""
        try:
            rows = self._db.execute("SELECT id, started, info FROM runs ORDER BY id").fetchall()
        except sqlite3.DatabaseError as exc:  # a runs table of other columns
            raise UnusableDatabase(f"{self.path}: unreadable runs table ({exc}); "
                                   "restore the database from a copy") from None  # fmt: skip
        return [{"started": started, **self._info(number, info)} for number, started, info in rows]

    def _info(self, number: int, info: object) -> dict:
        """The JSON object `add_run` stored as row `number` of the runs table; UnusableDatabase for anything else."""
        try:
            record = json.loads(info)
        except (TypeError, ValueError, RecursionError):  # not text, or not JSON
            record = None
        if not isinstance(record, dict):
            raise UnusableDatabase(f"{self.path}: runs table row {number}: info is not a JSON object "
                                   f"({repr(info)[:40]}); restore the database from a copy")  # fmt: skip
        return record
