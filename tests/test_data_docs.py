"""Great Expectations' Data Docs read offline: nothing loads from the network, the index
lists every validation with a visible status, and each result says passed or failed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_validation import CFG, IMAGES, make_manifest, row

from pipeline.data.validation import validate_manifest

LOADS_REMOTE = re.compile(r"<(?:link|script|img)\b[^>]*(?:href|src)=\"(?:https?:)?//", re.I)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The Data Docs of a manifest with one undecodable image (a critical failure)."""
    df = make_manifest()
    i = row(df, "cat/val_000.jpg")
    df.loc[i, ["width", "height", "channels", "format"]] = None
    df.loc[i, "error"] = "cannot identify image file"
    docs = tmp_path_factory.mktemp("docs") / "data_docs"
    assert not validate_manifest(df, CFG, images_params=IMAGES, docs_dir=docs).success
    return docs


def test_no_page_loads_anything_from_the_network(site: Path) -> None:
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 7  # the index, 3 suites, 3 validation results
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not LOADS_REMOTE.search(text), (page, LOADS_REMOTE.search(text)[0])
        assert "<script" not in text and "fa-check-circle" not in text and "<style>" in text


def test_the_index_lists_each_validation_with_its_status_and_link(site: Path) -> None:
    index = (site / "index.html").read_text(encoding="utf-8")
    rows = re.findall(r"<tr>(.*?)</tr>", index, re.S)
    statuses = {table: ("failed" if "gx-fail" in r else "passed")
                for r in rows for table in ("images", "class_totals", "class_split_counts")
                if f"manifest-{table}" in r}
    assert statuses == {"images": "failed", "class_totals": "passed",
                        "class_split_counts": "passed"}
    links = re.findall(r'<a href="(validations/[^"]+)"', index)
    assert len(links) == 3 and all((site / link).is_file() for link in links), links


def test_each_expectation_shows_passed_or_failed(site: Path) -> None:
    (page,) = (site / "validations").rglob("manifest-images.html")
    text = page.read_text(encoding="utf-8")
    assert text.count("&#10008; failed") >= 3  # width, height, ... of the undecodable image
    assert text.count("&#10004; passed") >= 20
