"""The breaker's sample of live traffic: the last ``size`` records, each entity's latest few.

Definition (what the tests compare with by brute force): of the records observed so far,
take the last ``size``; of those, keep each entity's most recent ``per_entity``. Every
record enters (none is skipped because its entity was seen before), so the sample follows
the population as it is now; an entity past its cap replaces its own oldest record, so
one busy entity can neither fill the window nor push other entities out of it. When no
entity has more than ``per_entity`` records among the last ``size``, the sample IS the
last ``size`` records.

The lagged window (``lagged=True``, for ``serving.breaker.reference: previous``): the records
that left this window, in the order they left (the oldest record of the ring when a new one
takes its slot, or an entity's oldest when the entity is past its cap), go through the same
definition (the last ``size`` of them, each entity's latest ``per_entity``): the window of
traffic before this one, sampled by the same rules. Without entities it IS the ``size``
records before the last ``size``.

(The earlier rule, "skip an entity's records once it holds its cap", kept each entity's
FIRST records: on entities with long histories the window froze on their beginnings, a
biased sample that also filled only ``per_entity`` x active entities slots.)

Storage: a ring of ``size`` slots of bin indices (one column per monitored feature and
one for the score; -1 = no value) with per-bin counts kept incrementally, so a push costs
O(records x columns) and the shares are ``counts / counts.sum()``.

Example:
    >>> w = EntityWindow(size=4, columns=1, width=3, per_entity=1)
    >>> w.push(np.array([[0], [1], [2]], dtype=np.int16), ["a", "a", "b"])
    >>> w.filled, w.counts[0].tolist()
    (2, [0, 1, 1])
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

_FEW = 8  # touched slots up to which a batch is written slot by slot


class EntityWindow:
    """Ring of the last ``size`` records with at most ``per_entity`` per entity."""

    def __init__(self, *, size: int, columns: int, width: int, per_entity: int | None = None,
                 lagged: bool = False):
        self.size, self.per_entity = int(size), per_entity
        self.buf = np.full((self.size, columns), -1, dtype=np.int16)
        self.counts = np.zeros((columns, width), dtype=np.int64)
        self.occupied = np.zeros(self.size, dtype=bool)
        self._owner: list = [None] * self.size          # entity of each occupied slot
        self._slots: dict = {}                          # entity -> its slots, oldest first
        self._pos = 0
        self.replaced = 0                               # records that replaced their entity's oldest
        # the records that left this window, by the same rules (None: not kept)
        self.lagged = EntityWindow(size=size, columns=columns, width=width,
                                   per_entity=per_entity) if lagged else None

    @property
    def filled(self) -> int:
        """Records in the window now."""
        return int(self.occupied.sum())

    def push(self, idx: np.ndarray, entities: Sequence | None = None) -> None:
        """Add records (rows of bin indices, in arrival order) and their entities (None:
        no per-entity cap)."""
        if idx.shape[0] == 0:
            return
        final: dict[int, int] = {}   # slot -> row now in it (-1: emptied), last write wins
        left: list | None = [] if self.lagged is not None else None  # (bins, entity) leaving
        for r in range(idx.shape[0]):
            key = entities[r] if entities is not None and self.per_entity else None
            slot = self._pos
            self._pos = (self._pos + 1) % self.size
            if left is not None:
                self._leaving(slot, final, idx, left)
            self._evict(slot)
            if key is not None:
                own = self._slots.setdefault(key, deque())
                if len(own) >= self.per_entity:  # past the cap: its own oldest goes
                    oldest = own.popleft()
                    if left is not None:
                        self._leaving(oldest, final, idx, left)
                    self._owner[oldest] = None
                    final[oldest] = -1
                    self.replaced += 1
                own.append(slot)
            self._owner[slot] = key
            final[slot] = r
        self._write(final, idx)
        if left:
            self.lagged.push(np.stack([row for row, _ in left]), [e for _, e in left])

    def _leaving(self, slot: int, final: dict[int, int], idx: np.ndarray, left: list) -> None:
        """Note the record ``slot`` holds now (written earlier in this batch or before it),
        which is about to leave the window, with its entity."""
        if slot in final:
            row = None if final[slot] < 0 else idx[final[slot]]
        else:
            row = self.buf[slot].copy() if self.occupied[slot] else None
        if row is not None:
            left.append((row, self._owner[slot]))

    def _evict(self, slot: int) -> None:
        """The ring's oldest slot is reused: its entity loses it (its oldest slot)."""
        old = self._owner[slot]
        if old is None:
            return
        own = self._slots[old]
        own.popleft()
        if not own:
            del self._slots[old]
        self._owner[slot] = None

    def _write(self, final: dict[int, int], idx: np.ndarray) -> None:
        """Apply the batch: remove what the touched slots held, add what they hold now."""
        if len(final) <= _FEW:
            return self._write_few(final, idx)
        slots = np.fromiter(final, dtype=np.int64, count=len(final))
        rows = np.fromiter(final.values(), dtype=np.int64, count=len(final))
        cols = np.arange(self.buf.shape[1])
        old = self.buf[slots]
        keep = old >= 0
        np.add.at(self.counts, (np.broadcast_to(cols, old.shape)[keep], old[keep]), -1)
        new = np.where(rows[:, None] >= 0, idx[np.maximum(rows, 0)], -1).astype(np.int16)
        self.buf[slots] = new
        keep = new >= 0
        np.add.at(self.counts, (np.broadcast_to(cols, new.shape)[keep], new[keep]), 1)
        self.occupied[slots] = rows >= 0

    def _write_few(self, final: dict[int, int], idx: np.ndarray) -> None:
        """:meth:`_write` slot by slot, in plain Python: for a few records the numpy
        scatter's set-up costs more than the work (the counts come out the same)."""
        counts, buf, occupied = self.counts, self.buf, self.occupied
        for slot, r in final.items():
            for j, b in enumerate(buf[slot].tolist()):
                if b >= 0:
                    counts[j, b] -= 1
            if r < 0:
                buf[slot] = -1
                occupied[slot] = False
                continue
            row = idx[r]
            buf[slot] = row
            for j, b in enumerate(row.tolist()):
                if b >= 0:
                    counts[j, b] += 1
            occupied[slot] = True

    def clear(self) -> None:
        """Empty the window and its lagged window (a reset)."""
        if self.lagged is not None:
            self.lagged.clear()
        self.buf.fill(-1)
        self.counts.fill(0)
        self.occupied.fill(False)
        self._owner = [None] * self.size
        self._slots.clear()
        self._pos = 0
