"""Campaign state made durable: a compacted changelog topic (Faust table), written before commits.

The pipeline keeps live campaign state in memory.  Before every offset commit (the app's
``before_commit`` hook) the campaigns that changed are written to the changelog, together with the
training examples they produced since their last snapshot, and the commit waits until the broker
has acknowledged all of it.  After a restart or a rebalance Faust recovers the table from the
changelog; a campaign is loaded from it the first time it is touched, re-delivered events are
skipped by the position each snapshot carries, and the examples in a loaded snapshot's outbox are
sent again (the trainer drops repeats): nothing is lost between the snapshot and its examples.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import faust

from agents.app import App
from agents.kafka import STATE_TABLE, owner_partition
from streams import metrics
from streams.config import Settings
from streams.state import CampaignState, CampaignStore, pack
from streams.training import pack_examples


class DurableState:
    def __init__(self, app: App, settings: Settings, store: CampaignStore) -> None:
        self.settings = settings
        self.store = store
        self.app = app
        # bytes keys and values: Faust then reads and writes the changelog with the raw codec.
        self.table = app.Table(STATE_TABLE, partitions=settings.partitions,
                               key_type=bytes, value_type=bytes, use_partitioner=True)
        store.load = self.load
        app.before_commit.append(self.flush)
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]

    def load(self, campaign_id: str) -> CampaignState | None:
        """A campaign's last durable snapshot (its outbox goes out again with the next one)."""
        data = self.table.data.get(campaign_id.encode())
        return CampaignState.from_bytes(data) if isinstance(data, bytes) else None

    def flush(self) -> Awaitable[None]:
        """Snapshot every campaign changed since the last flush, now; the awaitable returned
        completes when the broker holds the snapshots and their examples."""
        started = time.perf_counter()
        snapshots, examples = self.store.take_dirty()
        for campaign_id, data in snapshots.items():
            self.table.data[campaign_id.encode()] = data  # what a re-assignment here loads
        return self._write(snapshots, examples, started)

    async def _write(self, snapshots: dict[str, bytes], examples: list[bytes],
                     started: float) -> None:
        producer = self.app.producer
        changelog = self.table.changelog_topic.get_topic_name()
        if snapshots:  # compressed in a thread (zlib lets go of the GIL), not on the event loop
            snapshots = await asyncio.to_thread(_packed, snapshots)
        pending = [await producer.send(self.settings.training_topic, None, data, 0, None, None)
                   for data in pack_examples(examples)]  # to the single trainer: one lineage
        for campaign_id, data in snapshots.items():
            partition = owner_partition(campaign_id, self.settings.partitions)
            pending.append(await producer.send(changelog, campaign_id.encode(), data, partition,
                                               None, None))
        await asyncio.gather(*pending)
        if snapshots:
            metrics.SNAPSHOT_BYTES.inc(sum(map(len, snapshots.values())))
            metrics.SNAPSHOT_SECONDS.observe(time.perf_counter() - started)

    async def on_revoked(self, app: faust.App, revoked: set[Any], **_: Any) -> None:
        """A rebalance: another worker may own some of these campaigns before they come back.

        Nothing is dropped or snapshotted here (the assignment is not settled yet, and a snapshot
        taken after the last commit could land after the next owner's).  Instead every campaign
        in memory is checked against its durable snapshot when next touched: if another owner
        advanced it meanwhile, its newer snapshot replaces the copy held here."""
        self.store.suspect_all()


def _packed(snapshots: dict[str, bytes]) -> dict[str, bytes]:
    return {campaign_id: pack(data) for campaign_id, data in snapshots.items()}
