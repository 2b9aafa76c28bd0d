"""A books and films catalogue backed by SQLite.

The bundled JSON (toolenv/data/catalogue.json) is loaded into one in-memory database on first use; queries
are plain SQL. The connection is shared across the runner's worker threads (check_same_thread=False) and
every query holds a lock, since one sqlite3 connection must not be used by two threads at once.
"""
from __future__ import annotations

import difflib
import json
import sqlite3
import threading
from functools import lru_cache
from importlib import resources

from toolenv.spec import Tool, ToolError, ToolSpec

CATEGORY = "Catalogue"
_LOCK = threading.Lock()
# per kind: table, creator column, length column, rating scale
KINDS = {
    "book": {"table": "books", "creator": "author", "length": "pages", "scale": 5},
    "film": {"table": "films", "creator": "director", "length": "runtime_minutes", "scale": 10},
}
SORTS = {
    "rating": "rating DESC, title",
    "newest": "year DESC, title",
    "oldest": "year ASC, title",
    "title": "title",
    "longest": "{length} DESC, title",
    "shortest": "{length} ASC, title",
}


@lru_cache(maxsize=1)
def _db() -> sqlite3.Connection:
    data = json.loads(resources.files("toolenv").joinpath("data/catalogue.json").read_text(encoding="utf-8"))
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.row_factory = sqlite3.Row
    for kind, info in KINDS.items():
        table, creator, length = info["table"], info["creator"], info["length"]
        db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, title TEXT NOT NULL, {creator} TEXT NOT NULL, "
                   f"year INTEGER, rating REAL, {length} INTEGER, language TEXT, country TEXT)")
        db.execute(f"CREATE TABLE {kind}_genres ({kind}_id INTEGER REFERENCES {table}(id), genre TEXT, "
                   f"PRIMARY KEY ({kind}_id, genre))")
        for item in data[table]:
            cur = db.execute(f"INSERT INTO {table} (title, {creator}, year, rating, {length}, language, country) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (item["title"], item[creator], item["year"], item["rating"], item[length],
                              item["language"], item["country"]))
            db.executemany(f"INSERT INTO {kind}_genres VALUES (?, ?)", [(cur.lastrowid, g) for g in item["genres"]])
    db.commit()
    return db


def _query(sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    with _LOCK:
        return _db().execute(sql, params).fetchall()


def _record(kind: str, row: sqlite3.Row) -> dict:
    info = KINDS[kind]
    genres = [r["genre"] for r in _query(f"SELECT genre FROM {kind}_genres WHERE {kind}_id = ? ORDER BY rowid",
                                         (row["id"],))]
    return {"kind": kind, "title": row["title"], info["creator"]: row[info["creator"]], "year": row["year"],
            "genres": genres, "rating": row["rating"], info["length"]: row[info["length"]],
            "language": row["language"], "country": row["country"]}


def _search(kind: str, title, creator, genre, year_from, year_to, language, min_rating, sort_by, limit) -> dict:
    info = KINDS[kind]
    where, params = [], []
    for column, value in (("title", title), (info["creator"], creator), ("language", language)):
        if value:
            where.append(f"{column} LIKE ?")
            params.append(f"%{value.strip()}%")
    if genre:
        where.append(f"id IN (SELECT {kind}_id FROM {kind}_genres WHERE genre LIKE ?)")
        params.append(genre.strip())
    for clause, value in (("year >= ?", year_from), ("year <= ?", year_to), ("rating >= ?", min_rating)):
        if value is not None:
            where.append(clause)
            params.append(value)
    condition = " WHERE " + " AND ".join(where) if where else ""
    total = _query(f"SELECT COUNT(*) AS n FROM {info['table']}{condition}", tuple(params))[0]["n"]
    order = SORTS[sort_by].format(length=info["length"])
    rows = _query(f"SELECT * FROM {info['table']}{condition} ORDER BY {order} LIMIT ?", (*params, limit))
    return {"total_matches": total, info["table"]: [_record(kind, r) for r in rows]}


def search_books(sort_by: str, limit: int, title: str | None = None, author: str | None = None,
                 genre: str | None = None, year_from: int | None = None, year_to: int | None = None,
                 language: str | None = None, min_rating: float | None = None) -> dict:
    """Filter books; every filter is optional and they combine with AND."""
    return _search("book", title, author, genre, year_from, year_to, language, min_rating, sort_by, limit)


def search_films(sort_by: str, limit: int, title: str | None = None, director: str | None = None,
                 genre: str | None = None, year_from: int | None = None, year_to: int | None = None,
                 language: str | None = None, min_rating: float | None = None) -> dict:
    """Filter films; every filter is optional and they combine with AND."""
    return _search("film", title, director, genre, year_from, year_to, language, min_rating, sort_by, limit)


def _find(title: str, kind: str) -> tuple[str, sqlite3.Row]:
    """Resolve a title: exact (case-insensitive) first, then a unique substring; else suggest close titles."""
    kinds = list(KINDS) if kind == "any" else [kind]
    wanted = title.strip()
    for exact in (True, False):
        hits = []
        for k in kinds:
            sql = f"SELECT * FROM {KINDS[k]['table']} WHERE " + ("title = ? COLLATE NOCASE" if exact else "title LIKE ?")
            hits += [(k, r) for r in _query(sql, (wanted if exact else f"%{wanted}%",))]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            listed = "; ".join(f"{r['title']} ({k}, {r['year']}, {r[KINDS[k]['creator']]})" for k, r in hits[:8])
            hint = "pass kind='book' or kind='film'" if exact else "give the full title"
            raise ToolError(f"'{title}' matches several titles: {listed}. Please {hint}.")
    titles = [r["title"] for k in kinds for r in _query(f"SELECT title FROM {KINDS[k]['table']}")]
    close = difflib.get_close_matches(wanted, titles, n=3, cutoff=0.5)
    suggestion = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ToolError(f"no {'title' if kind == 'any' else kind} called '{title}' in the catalogue.{suggestion}")


def get_title_details(title: str, kind: str) -> dict:
    """Full record of one book or film, with how it ranks in its first genre."""
    found_kind, row = _find(title, kind)
    record = _record(found_kind, row)
    table = KINDS[found_kind]["table"]
    rank = _query(f"SELECT COUNT(*) + 1 AS r FROM {table} WHERE rating > ? AND id IN "
                  f"(SELECT {found_kind}_id FROM {found_kind}_genres WHERE genre = ?)",
                  (row["rating"], record["genres"][0]))[0]["r"]
    record["rating_scale"] = KINDS[found_kind]["scale"]
    record["rank_in_genre"] = {"genre": record["genres"][0], "rank": rank}
    return record


def recommend_similar(title: str, kind: str, limit: int) -> dict:
    """Titles of the same kind sharing the most genres, then the highest rated."""
    found_kind, row = _find(title, kind)
    info = KINDS[found_kind]
    g = f"{found_kind}_genres"
    rows = _query(
        f"SELECT t.*, COUNT(*) AS shared FROM {info['table']} t JOIN {g} ON {g}.{found_kind}_id = t.id "
        f"WHERE {g}.genre IN (SELECT genre FROM {g} WHERE {found_kind}_id = ?) AND t.id != ? "
        "GROUP BY t.id ORDER BY shared DESC, t.rating DESC, t.title LIMIT ?",
        (row["id"], row["id"], limit))
    return {
        "source": {"kind": found_kind, "title": row["title"], info["creator"]: row[info["creator"]]},
        "recommendations": [{"title": r["title"], info["creator"]: r[info["creator"]], "year": r["year"],
                             "rating": r["rating"], "shared_genres": r["shared"]} for r in rows],
    }


def catalogue_summary(kind: str, group_by: str, sort_by: str, min_count: int) -> dict:
    """Aggregate the catalogue per genre, decade, language or creator (SQL GROUP BY)."""
    info = KINDS[kind]
    table, length = info["table"], info["length"]
    key = {"genre": "g.genre", "decade": "(t.year / 10) * 10", "language": "t.language",
           "creator": f"t.{info['creator']}", "country": "t.country"}[group_by]
    join = f" JOIN {kind}_genres g ON g.{kind}_id = t.id" if group_by == "genre" else ""
    order = {"count": "n DESC, avg_rating DESC", "average_rating": "avg_rating DESC, n DESC",
             "name": "grp"}[sort_by]
    rows = _query(f"SELECT {key} AS grp, COUNT(*) AS n, AVG(t.rating) AS avg_rating, AVG(t.{length}) AS avg_len, "
                  f"MIN(t.year) AS first_year, MAX(t.year) AS last_year FROM {table} t{join} "
                  f"GROUP BY grp HAVING n >= ? ORDER BY {order}, grp", (min_count,))
    groups = []
    for r in rows:
        best = _query(f"SELECT t.title FROM {table} t{join} WHERE {key} = ? ORDER BY t.rating DESC, t.title LIMIT 1",
                      (r["grp"],))[0]["title"]
        group = f"{r['grp']}s" if group_by == "decade" else r["grp"]
        groups.append({"group": group, "count": r["n"], "average_rating": round(r["avg_rating"], 2),
                       f"average_{length}": round(r["avg_len"], 1), "first_year": r["first_year"],
                       "last_year": r["last_year"], "top_rated": best})
    total = _query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]
    return {"kind": kind, "group_by": group_by, "total_titles": total, "group_count": len(groups), "groups": groups}


def _search_params(creator: str, length_word: str) -> dict:
    return {"type": "object", "properties": {
        "title": {"type": "string", "description": "Part of the title (case-insensitive substring)."},
        creator: {"type": "string", "description": f"Part of the {creator}'s name (case-insensitive substring)."},
        "genre": {"type": "string", "description": "Exact genre, e.g. 'science fiction', 'crime', 'romance'."},
        "year_from": {"type": "integer", "description": "Earliest release year (inclusive)."},
        "year_to": {"type": "integer", "description": "Latest release year (inclusive)."},
        "language": {"type": "string", "description": "Original language, e.g. 'English', 'French', 'Japanese'."},
        "min_rating": {"type": "number", "minimum": 0, "description": "Minimum average rating."},
        "sort_by": {"type": "string", "enum": list(SORTS), "default": "rating",
                    "description": f"Order: highest rated, newest, oldest, title A-Z, longest or shortest "
                                   f"({length_word})."},
        "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5, "description": "Maximum results."},
    }, "required": []}


TITLE_KIND = {"type": "string", "enum": ["any", "book", "film"], "default": "any",
              "description": "Look among books, films or both (use it when a book and its film share a title)."}

TOOLS = [
    Tool(ToolSpec(
        name="search_books",
        description="Search the book catalogue by title, author, genre, publication year range, original "
                    "language and minimum reader rating (out of 5), sorted as requested.",
        category=CATEGORY, suite="builtin", round=1,
        parameters=_search_params("author", "page count"),
        returns="{total_matches, books: [{kind, title, author, year, genres, rating, pages, language, country}]}",
        examples=({"arguments": {"genre": "horror", "limit": 3}},
                  {"arguments": {"author": "Tolstoy", "sort_by": "oldest"}}),
    ), search_books),
    Tool(ToolSpec(
        name="search_films",
        description="Search the film catalogue by title, director, genre, release year range, original "
                    "language and minimum audience rating (out of 10), sorted as requested.",
        category=CATEGORY, suite="builtin", round=3,
        parameters=_search_params("director", "runtime"),
        returns="{total_matches, films: [{kind, title, director, year, genres, rating, runtime_minutes, language, "
                "country}]}",
        examples=({"arguments": {"genre": "comedy"}},
                  {"arguments": {"director": "Hitchcock", "sort_by": "newest", "limit": 2}}),
    ), search_films),
    Tool(ToolSpec(
        name="get_title_details",
        description="Full catalogue record of one book or film by its title: author or director, year, "
                    "genres, rating, length, language, country, and its rank by rating within its main genre. "
                    "Suggests close titles when there is no match.",
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "title": {"type": "string", "minLength": 1, "description": "The title (exact or a unique part of it)."},
            "kind": TITLE_KIND,
        }, "required": ["title"]},
        returns="{kind, title, author|director, year, genres, rating, rating_scale, pages|runtime_minutes, "
                "language, country, rank_in_genre: {genre, rank}}",
        examples=({"arguments": {"title": "Emma"}}, {"arguments": {"title": "Jaws", "kind": "film"}}),
    ), get_title_details),
    Tool(ToolSpec(
        name="recommend_similar",
        description="Recommend books similar to a book, or films similar to a film: the titles sharing the "
                    "most genres with it, best rated first.",
        category=CATEGORY, suite="builtin", round=3,
        parameters={"type": "object", "properties": {
            "title": {"type": "string", "minLength": 1, "description": "A title the user liked."},
            "kind": TITLE_KIND,
            "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5,
                      "description": "How many recommendations."},
        }, "required": ["title"]},
        returns="{source: {kind, title, author|director}, recommendations: [{title, author|director, year, rating, "
                "shared_genres}]}",
        examples=({"arguments": {"title": "Dracula", "limit": 3}},),
    ), recommend_similar),
    Tool(ToolSpec(
        name="catalogue_summary",
        description="Statistics over the whole books or films catalogue grouped by genre, decade, original "
                    "language, author/director or country: number of titles, average rating, average "
                    "length, year span and the top-rated title of each group.",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "kind": {"type": "string", "enum": ["book", "film"], "description": "Which catalogue."},
            "group_by": {"type": "string", "enum": ["genre", "decade", "language", "creator", "country"],
                         "default": "genre", "description": "Grouping key ('creator' = author or director)."},
            "sort_by": {"type": "string", "enum": ["count", "average_rating", "name"], "default": "count",
                        "description": "Order of the groups: most titles, best average rating, or alphabetical."},
            "min_count": {"type": "integer", "minimum": 1, "default": 1,
                          "description": "Only groups with at least this many titles."},
        }, "required": ["kind"]},
        returns="{kind, group_by, total_titles, group_count, groups: [{group, count, average_rating, "
                "average_pages|average_runtime_minutes, first_year, last_year, top_rated}]}",
        examples=({"arguments": {"kind": "book", "group_by": "creator", "min_count": 2}},),
    ), catalogue_summary),
]
