"""`?page=&page_size=` for list endpoints, the page they answer with, and their `?q=` search pattern."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

T = TypeVar("T")
MAX_PAGE_SIZE = 100


def contains_pattern(text: str) -> str:
    """An ILIKE pattern matching `text` literally anywhere: its own `%`, `_` and `\\` are not wildcards
    (PostgreSQL's LIKE escape character is the backslash)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class PageQuery:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


async def _page_query(page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
                      page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20) -> PageQuery:
    return PageQuery(page, page_size)


Paging = Annotated[PageQuery, Depends(_page_query)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int

    @classmethod
    def of(cls, items: list[T], total: int, query: PageQuery) -> "Page[T]":
        return cls(items=items, total=total, page=query.page, page_size=query.page_size)
