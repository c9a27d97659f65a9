"""The collector's hygiene: survivors are frozen out of the automatic collections, cycles are still freed."""

from __future__ import annotations

import asyncio
import gc

import pytest

from concert.server.heap import HeapConfig, HeapStats, full_collection, hygiene


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_freezing_moves_survivors_out_and_the_full_pass_frees_frozen_cycles() -> None:
    gc.collect()
    before = gc.get_freeze_count()
    nodes = [Node() for _ in range(1000)]
    stats = HeapStats()

    async def main() -> None:
        task = asyncio.create_task(hygiene(HeapConfig(freeze_every_s=0.05, full_every_s=10.0), stats))
        await asyncio.sleep(0.2)
        task.cancel()

    try:
        asyncio.run(main())
        assert stats.freezes >= 2 and gc.get_freeze_count() >= before + 1000  # the nodes are frozen
        del nodes[:]  # now garbage, in cycles, frozen: the automatic collections never see them
        gc.collect()
        pause = full_collection(stats)
        assert stats.collected >= 1000 and stats.full_collections == 1  # the scheduled pass freed them
        assert stats.full_pause_max_seconds == pause > 0
    finally:
        gc.unfreeze()


def test_bad_heap_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        HeapConfig(freeze_every_s=0.0)
    with pytest.raises(ValueError):
        HeapConfig(freeze_every_s=100.0, full_every_s=10.0)
