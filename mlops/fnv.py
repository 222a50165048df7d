"""FNV-1a, 32 bit: one function per encoding of a string, named for it.

Two callers hash strings, each with its own reason to pick an encoding:

- experiment assignment hashes UTF-16 code units (:func:`fnv1a32_utf16`), as GrowthBook's
  reference SDK does (``str.charCodeAt``), so a unit lands in the same variant here and
  in any GrowthBook client;
- batch scoring and feature shards hash UTF-8 bytes (:func:`fnv1a32_utf8`, vectorized
  by :func:`fnv1a32_utf8_series`): a stable entity hash, unlike polars' ``hash``, which
  may change between polars versions.

For ASCII text the two encodings give the same number; for anything else they differ.

>>> hex(fnv1a32_utf8("a")), hex(fnv1a32_utf16("a"))
('0xe40c292c', '0xe40c292c')
>>> fnv1a32_utf8("é") == fnv1a32_utf16("é")
False
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def fnv1a32_units(units: Iterable[int], state: int = FNV_OFFSET) -> int:
    """FNV-1a over a sequence of code units (bytes or UTF-16 units), continued from
    ``state`` (FNV is a stream: hashing ``a + b`` is hashing ``b`` from the state of ``a``).

    >>> hex(fnv1a32_units(b"a"))
    '0xe40c292c'
    """
    for unit in units:
        state = ((state ^ unit) * FNV_PRIME) & _MASK
    return state


def utf16_units(text: str) -> Iterable[int]:
    """The UTF-16 code units of ``text`` (a character outside the BMP is two units)."""
    if text.isascii():
        return text.encode("ascii")
    return memoryview(text.encode("utf-16-le")).cast("H")


def fnv1a32_utf16(text: str, state: int = FNV_OFFSET) -> int:
    """FNV-1a of the UTF-16 code units of ``text`` (GrowthBook's string hash).

    >>> hex(fnv1a32_utf16("foobar"))
    '0xbf9cf968'
    """
    return fnv1a32_units(utf16_units(text), state)


def fnv1a32_utf8(text: str) -> int:
    """FNV-1a of the UTF-8 bytes of ``text`` (the scalar reference of the entity hash).

    >>> hex(fnv1a32_utf8("foobar"))
    '0xbf9cf968'
    """
    return fnv1a32_units(text.encode("utf-8"))


def fnv1a32_many(buf: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                 state0: int = FNV_OFFSET) -> np.ndarray:
    """FNV-1a continued from ``state0`` over many code-unit strings stored back to back
    (``buf[offsets[i]:offsets[i] + lengths[i]]`` is string i; uint8 or uint16 units):
    the one vectorized FNV-1a (uint32 array out)."""
    n = len(lengths)
    # Longest strings first, so the strings still being hashed at position j are a prefix.
    order = np.argsort(-lengths, kind="stable")
    lens_sorted, offs_sorted = lengths[order], offsets[order]
    h = np.full(n, state0, dtype=np.uint32)
    prime = np.uint32(FNV_PRIME)
    max_len = int(lens_sorted[0]) if n else 0
    active = n
    for j in range(max_len):
        while active and lens_sorted[active - 1] <= j:
            active -= 1
        units = buf[offs_sorted[:active] + j].astype(np.uint32)
        h[:active] = (h[:active] ^ units) * prime  # uint32 arithmetic wraps mod 2**32
    out = np.empty(n, dtype=np.uint32)
    out[order] = h
    return out


def fnv1a32_utf8_series(values: pl.Series) -> np.ndarray:
    """:func:`fnv1a32_utf8` of every value of a Series (cast to strings; null hashes as "")."""
    import pyarrow as pa  # here: ~0.15 s to import; the config schema imports this module
    arr = values.cast(pl.String).fill_null("").to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_binary())
    _, offs_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offs_buf, dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None \
        else np.zeros(0, np.uint8)
    return fnv1a32_many(data, offsets[:-1], np.diff(offsets))
