"""Micro-batcher: batching by size and time, per-submitter errors."""
from __future__ import annotations

import asyncio

import pytest

from mlops.serving.pipeline.micro_batch import MicroBatcher


def test_requests_are_grouped_up_to_max_batch_records():
    seen = []

    def process(items):
        seen.append([x for x, _ in items])
        return [x * 10 for x, _ in items]

    async def run():
        b = MicroBatcher(process, max_wait_s=0.5, max_batch=64)
        results = await asyncio.gather(*[b.submit((i, 30), 30) for i in range(3)])
        await b.close()
        return results
    assert asyncio.run(run()) == [0, 10, 20]
    assert seen == [[0, 1], [2]]  # 30 + 30 <= 64 < 90


def test_an_error_reaches_only_its_submitter():
    def process(items):
        return [ValueError("bad item") if x == 1 else x for x in items]

    async def run():
        b = MicroBatcher(process, max_wait_s=0.05)
        out = await asyncio.gather(*[b.submit(i) for i in range(3)], return_exceptions=True)
        await b.close()
        return out
    ok0, err, ok2 = asyncio.run(run())
    assert (ok0, ok2) == (0, 2) and isinstance(err, ValueError)


def test_a_crashing_process_fails_the_batch_but_not_the_batcher():
    calls = []

    def process(items):
        calls.append(len(items))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return items

    async def run():
        b = MicroBatcher(process, max_wait_s=0.0)
        with pytest.raises(RuntimeError, match="boom"):
            await b.submit("a")
        again = await b.submit("b")
        await b.close()
        return again
    assert asyncio.run(run()) == "b"


@pytest.mark.parametrize("durable", [False, True])
def test_batches_are_not_held_back_while_answers_wait_for_a_log_commit(durable):
    """Buffered log: a request waits for one being parsed and they share a batch. Durable
    log (answers carry a commit future): it goes at once and the late one forms the next
    batch, computed while the previous batch's fsync runs (pipelined group commit)."""
    from types import SimpleNamespace
    seen = []

    def process(items):
        seen.append(list(items))
        return [SimpleNamespace(x=x, durable=object() if durable else None) for x in items]

    async def run():
        b = MicroBatcher(process, max_wait_s=30.0)
        await b.submit("first")            # tells the batcher how answers are acknowledged
        with b.arriving_request() as arrived:
            early = asyncio.ensure_future(b.submit("a"))
            await asyncio.sleep(0.05)      # "b" is still being parsed meanwhile
            arrived()
            late = asyncio.ensure_future(b.submit("b"))
            await asyncio.gather(early, late)
        await b.close()
    asyncio.run(run())
    assert seen == ([["first"], ["a"], ["b"]] if durable else [["first"], ["a", "b"]])
