"""List queries and list pages shared by every collection route (Baetyl's list shape, DESIGN §6).

`GET /v1/<things>?selector=&name=&pageNo=&pageSize=` answers
`{"total", "pageNo", "pageSize", "items"}`, newest first; `pageSize` 0 (the default) means all.
"""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.contracts import selectors
from agent.contracts.wire import WireModel

ItemT = TypeVar("ItemT")
MAX_PAGE_SIZE = 1000
MAX_PAGE_NO = 1_000_000  # so (pageNo - 1) * pageSize stays far inside a 64-bit OFFSET


class ListQuery(BaseModel):
    """Filters and paging of a list request (query-string values, converted)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    selector: Annotated[str, Field(max_length=4096)] = ""
    name: Annotated[str, Field(max_length=63)] = ""
    page_no: Annotated[int, Field(alias="pageNo", ge=1, le=MAX_PAGE_NO)] = 1
    page_size: Annotated[int, Field(alias="pageSize", ge=0, le=MAX_PAGE_SIZE)] = 0

    @field_validator("selector")
    @classmethod
    def _parses(cls, text: str) -> str:
        selectors.parse(text)  # SelectorError is a ValueError: reported as a 400 naming the spot
        return text

    def label_filter(self) -> selectors.Selector | None:
        """The selector to filter with, or None when the request gave none (no filtering)."""
        return selectors.parse(self.selector) if self.selector.strip() else None

    def window(self) -> tuple[int, int | None]:
        """(offset, limit) of the requested page; limit None means "to the end"."""
        if self.page_size == 0:
            return 0, None
        return (self.page_no - 1) * self.page_size, self.page_size


class Page(WireModel, Generic[ItemT]):
    """One page of a list; `total` counts every match, not just this page."""

    total: int
    page_no: int
    page_size: int
    items: list[ItemT]

    @classmethod
    def of(cls, query: ListQuery, total: int, items: list[ItemT]) -> Page[ItemT]:
        """The page for `query`."""
        return cls(total=total, page_no=query.page_no, page_size=query.page_size, items=items)
