"""Object items as Baetyl writes them: its storage names and items without a source."""

from __future__ import annotations

import pytest

from agent.contracts.objects import ObjectItem
from agent.contracts.wire import PayloadError, validate


@pytest.mark.parametrize("source", ["minio", "awss3", "MinIO", "local", ""])
def test_the_clouds_storage_by_any_of_baetyls_names_is_this_clouds_store(source: str) -> None:
    item = validate(ObjectItem, {"source": source, "bucket": "code", "object": "a.zip"})
    assert item.source == "local"


def test_an_item_without_a_source_but_a_url_is_downloaded_from_it() -> None:
    item = validate(ObjectItem, {"url": "https://files.example/a.zip"})
    assert item.source == "http"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"source": "ftp", "bucket": "code", "object": "a.zip"}, "not an object source"),
        ({"bucket": "code"}, "object"),
        ({"source": "http"}, "needs an http"),
        ({"source": "minio", "bucket": "code", "object": "a.zip", "endpoint": "x"}, "account"),
    ],
)
def test_items_that_name_no_reachable_bytes_are_refused(
    body: dict[str, str], fragment: str
) -> None:
    with pytest.raises(PayloadError, match=fragment):
        validate(ObjectItem, body)
