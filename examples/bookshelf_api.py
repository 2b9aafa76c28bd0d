"""Tools of your own as an HTTP service: FastAPI writes its own OpenAPI document, and every operation is a tool.

    uvicorn examples.bookshelf_api:app --port 8765 &
    imaginarium tools list --tools-from openapi:http://127.0.0.1:8765/openapi.json
"""
from fastapi import FastAPI, HTTPException

app = FastAPI(title="Bookshelf")
BOOKS = {"dune": {"title": "Dune", "author": "Frank Herbert", "year": 1965, "pages": 412},
         "solaris": {"title": "Solaris", "author": "Stanislaw Lem", "year": 1961, "pages": 204},
         "emma": {"title": "Emma", "author": "Jane Austen", "year": 1815, "pages": 474}}


@app.get("/books/{slug}", operation_id="get_book")
def get_book(slug: str) -> dict:
    """A book's title, author, year and page count, by its lowercase one-word slug (dune, solaris, emma)."""
    if slug.lower() not in BOOKS:
        raise HTTPException(404, f"no book {slug!r}; books: {', '.join(BOOKS)}")
    return BOOKS[slug.lower()]


@app.get("/books", operation_id="books_since")
def books_since(year: int) -> list[str]:
    """Titles of the books published in or after a year."""
    return [book["title"] for book in BOOKS.values() if book["year"] >= year]
