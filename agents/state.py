"""Campaign state made durable: a compacted changelog topic (Faust table), written before commits.

The pipeline keeps live campaign state in memory.  Before every offset commit the campaigns that
changed are queued to the changelog (the app's ``before_commit`` hook), so their snapshots are
durable before the offsets that produced them are committed.  After a restart or a rebalance Faust
recovers the table from the changelog; a campaign is loaded from it the first time it is touched,
and re-delivered events are skipped by the position each snapshot carries.
"""

from __future__ import annotations

import time
from typing import Any

import faust

from agents.app import App
from agents.kafka import owner_partition
from streams import metrics
from streams.config import Settings
from streams.state import CampaignStore


class DurableState:
    def __init__(self, app: App, settings: Settings, store: CampaignStore) -> None:
        self.settings = settings
        self.store = store
        # bytes keys and values: Faust then reads and writes the changelog with the raw codec.
        self.table = app.Table("campaign-state", partitions=settings.partitions,
                               key_type=bytes, value_type=bytes, use_partitioner=True)
        store.load = self.load
        app.before_commit.append(self.flush)
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]

    def load(self, campaign_id: str) -> bytes | None:
        data = self.table.data.get(campaign_id.encode())
        return data if isinstance(data, bytes) else None

    def flush(self) -> None:
        """Queue a snapshot of every campaign changed since the last flush."""
        started = time.perf_counter()
        written = 0
        for campaign_id, data in self.store.take_dirty().items():
            key = campaign_id.encode()
            self.table.send_changelog(owner_partition(campaign_id, self.settings.partitions),
                                      key, data, key_serializer="raw", value_serializer="raw")
            self.table.data[key] = data  # what a later re-assignment to this worker loads
            written += len(data)
        if written:
            metrics.SNAPSHOT_BYTES.inc(written)
            metrics.SNAPSHOT_SECONDS.observe(time.perf_counter() - started)

    async def on_revoked(self, app: faust.App, revoked: set[Any], **_: Any) -> None:
        """Partitions go to another worker: snapshot, then forget their campaigns here."""
        self.flush()
        gone = {tp.partition for tp in revoked if tp.topic == self.settings.input_topic}
        if gone:
            self.store.drop(lambda cid: owner_partition(cid, self.settings.partitions) in gone)
