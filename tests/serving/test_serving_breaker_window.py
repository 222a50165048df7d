"""The breaker's window samples the population as it is now: the last ``window`` records,
each entity's latest few (never its first ones), checked against brute force."""
from __future__ import annotations

import numpy as np
import pytest

from mlops.monitoring.stats import psi
from mlops.serving.breaker.window import EntityWindow


def _brute_window(stream: list[tuple[str, int]], size: int, cap: int | None) -> list[int]:
    """By the definition: the last ``size`` records; of those each entity's latest ``cap``."""
    last = stream[-size:]
    kept, seen = [], {}
    for entity, value in reversed(last):
        seen[entity] = seen.get(entity, 0) + 1
        if cap is None or seen[entity] <= cap:
            kept.append(value)
    return kept


def _first_n(stream: list[tuple[str, int]], cap: int, size: int) -> list[int]:
    """The rule this replaces, as it ran: a ring of ``size`` slots in which a record is
    SKIPPED while its entity holds ``cap`` slots; the ring advances only on kept records,
    so with few entities it never wraps and their first records stay."""
    ring: list[tuple[str, int] | None] = [None] * size
    held: dict[str, int] = {}
    pos = 0
    for entity, value in stream:
        if held.get(entity, 0) >= cap:
            continue
        old = ring[pos]
        if old is not None:
            held[old[0]] -= 1
        ring[pos] = (entity, value)
        held[entity] = held.get(entity, 0) + 1
        pos = (pos + 1) % size
    return [v for slot in ring if slot is not None for v in [slot[1]]]


def _counts(values: list[int], width: int) -> np.ndarray:
    return np.bincount(np.asarray(values, dtype=int), minlength=width)


@pytest.mark.parametrize("seed", range(8))
def test_the_window_is_the_definition_on_random_streams(seed):
    rng = np.random.default_rng(seed)
    size, cap, width = int(rng.integers(5, 60)), int(rng.integers(1, 8)), 6
    w = EntityWindow(size=size, columns=2, width=width, per_entity=cap)
    # hot entities (a few send most records) among many quiet ones
    weights = np.r_[np.full(3, 30.0), np.ones(40)]
    stream: list[tuple[str, int]] = []
    for _ in range(40):
        m = int(rng.integers(1, 2 * size))   # batches longer than the window too
        ents = [f"e{k}" for k in rng.choice(weights.size, size=m, p=weights / weights.sum())]
        vals = rng.integers(0, width, size=m)
        idx = np.column_stack([vals, np.where(rng.random(m) < 0.2, -1, vals)]).astype(np.int16)
        w.push(idx, ents)
        stream += list(zip(ents, vals.tolist()))
        want = _brute_window(stream, size, cap)
        assert w.filled == len(want)
        assert w.counts[0].tolist() == _counts(want, width).tolist()
    # the second column drops missing values (-1) but keeps the same records
    assert w.counts[1].sum() <= w.counts[0].sum()


def test_without_entities_the_window_is_the_last_records():
    w = EntityWindow(size=7, columns=1, width=4, per_entity=2)
    stream = [("x", v % 4) for v in range(30)]
    w.push(np.array([[v] for _, v in stream], dtype=np.int16), None)
    assert w.counts[0].tolist() == _counts([v for _, v in stream[-7:]], 4).tolist()


def _lifetimes(rng, *, entities: int, life: int, active: int, width: int):
    """Entities with long histories whose values change with age (as a storm's wind, a
    customer's basket over the years), arriving staggered so ``active`` are alive at once."""
    starts = np.sort(rng.uniform(0, entities * life / active, entities))
    events = [(t0 + a + rng.uniform(0, 0.5), f"s{k}", min(width - 1, a * width // life))
              for k, t0 in enumerate(starts) for a in range(life)]
    return [(e, v) for _, e, v in sorted(events)]


def test_many_entities_the_window_is_exactly_the_population_and_first_n_is_not():
    """Each entity has at most ``cap`` records among the last ``size``: the window IS the
    last ``size`` records, whatever the entities' histories; first-N-per-entity is not."""
    rng = np.random.default_rng(0)
    width, size, cap = 10, 500, 25
    stream = _lifetimes(rng, entities=2000, life=40, active=200, width=width)
    w = EntityWindow(size=size, columns=1, width=width, per_entity=cap)
    for start in range(0, len(stream), 37):
        part = stream[start:start + 37]
        w.push(np.array([[v] for _, v in part], dtype=np.int16), [e for e, _ in part])
        seen = stream[:start + len(part)]
        if len(seen) >= size:
            population = _counts([v for _, v in seen[-size:]], width)
            assert w.counts[0].tolist() == population.tolist()
    population = _counts([v for _, v in stream[-size:]], width) / size
    first = _counts(_first_n(stream, 5, size), width)  # the old rule at its default cap
    assert psi(population, w.counts[0] / w.counts[0].sum()) == 0.0
    assert psi(population, first / first.sum()) > 1.0  # it saw young entities only


def test_few_entities_with_long_histories_track_the_population():
    """The shape that froze the old window (a few dozen entities alive at once, hundreds of
    records each): the latest records per entity follow the population now (the last
    ``size`` records); the first ones do not."""
    rng = np.random.default_rng(1)
    width, size, cap = 10, 500, 25
    stream = _lifetimes(rng, entities=400, life=200, active=20, width=width)
    w = EntityWindow(size=size, columns=1, width=width, per_entity=cap)
    got, first_psi, fill, first_fill = [], [], [], []
    for start in range(0, len(stream), 50):
        part = stream[start:start + 50]
        w.push(np.array([[v] for _, v in part], dtype=np.int16), [e for e, _ in part])
        seen = stream[:start + len(part)]
        if start > 4 * size and start % 2000 == 0:
            population = _counts([v for _, v in seen[-size:]], width) / size
            got.append(psi(population, w.counts[0] / w.counts[0].sum()))
            fill.append(w.filled)
            first = _counts(_first_n(seen, 5, size), width)  # its default: 5 per entity
            first_psi.append(psi(population, first / first.sum()))
            first_fill.append(int(first.sum()))
    got, fill = np.array(got), np.array(fill)
    assert np.median(fill) == size  # ~20 entities x 5% of the window: it fills
    # full: no entity was capped, the window IS the population now; when fewer entities
    # are alive the cap keeps the busiest from dominating (the deviation is that, by design)
    assert (got[fill == size] == 0.0).all() and got.max() < 0.25
    assert np.median(first_psi) > 1.0


def test_one_entity_at_its_share_cannot_reach_the_psi_floor_alone():
    """The default max_entity_share (10%): even if every record an entity holds lands in one
    decile bin, the PSI it adds stays under the 0.1 floor of every limit; 12.5% reaches it."""
    from mlops.monitoring.stats import psi
    from mlops.serving.settings import BreakerSettings
    share = BreakerSettings().max_entity_share
    ref = np.full(10, 0.1)

    def one_entity(s):
        cur = ref * (1 - s)
        cur[0] += s
        return psi(ref, cur)
    assert share == 0.1 and one_entity(share) < 0.1 <= one_entity(0.126)
