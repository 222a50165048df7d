"""FNV-1a per encoding (mlops/fnv.py): the published vectors, each encoding against a
loop written from the definition, and where the two encodings part."""
from __future__ import annotations

import polars as pl
import pytest

from mlops.fnv import fnv1a32_utf8, fnv1a32_utf8_series, fnv1a32_utf16


def scratch(units: list[int]) -> int:
    h = 2166136261
    for u in units:
        h = ((h ^ u) * 16777619) % 2**32
    return h


@pytest.mark.parametrize("fn", [fnv1a32_utf8, fnv1a32_utf16])
def test_published_vectors(fn):
    assert (fn(""), fn("a"), fn("foobar")) == (0x811C9DC5, 0xE40C292C, 0xBF9CF968)


@pytest.mark.parametrize("text", ["é", "ключ", "😀", "a-é-😀"])
def test_each_encoding_hashes_its_own_code_units(text):
    utf16 = [int.from_bytes(text.encode("utf-16-le")[i:i + 2], "little")
             for i in range(0, len(text.encode("utf-16-le")), 2)]
    assert fnv1a32_utf8(text) == scratch(list(text.encode("utf-8")))
    assert fnv1a32_utf16(text) == scratch(utf16)
    assert fnv1a32_utf8(text) != fnv1a32_utf16(text)  # non-ASCII: the encodings part


def test_ascii_is_the_same_in_both_encodings():
    for text in ["user-123456", "90850943850283058242805", "x" * 300]:
        assert fnv1a32_utf8(text) == fnv1a32_utf16(text) == scratch(list(text.encode()))


def test_the_series_is_the_scalar_utf8_hash():
    values = ["", "a", "foobar", "u000123", "ünïcode-ключ", None, "x" * 300]
    assert fnv1a32_utf8_series(pl.Series(values)).tolist() == [fnv1a32_utf8(v or "") for v in values]
    sliced = pl.Series(values).slice(2, 3)  # arrow offsets of a slice
    assert fnv1a32_utf8_series(sliced).tolist() == [fnv1a32_utf8(v or "") for v in values[2:5]]
