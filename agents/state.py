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
from agents.topics import raw_topic
from streams import metrics
from streams.config import Settings
from streams.state import CampaignState, CampaignStore
from streams.training import Example


class DurableState:
    def __init__(self, app: App, settings: Settings, store: CampaignStore) -> None:
        self.settings = settings
        self.store = store
        self.training = raw_topic(app, settings.training_topic, 1)
        # bytes keys and values: Faust then reads and writes the changelog with the raw codec.
        self.table = app.Table("campaign-state", partitions=settings.partitions,
                               key_type=bytes, value_type=bytes, use_partitioner=True)
        store.load = self.load
        app.before_commit.append(self.flush)
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]

    def load(self, campaign_id: str) -> CampaignState | None:
        """A campaign's last durable snapshot; the examples in its outbox are sent again."""
        data = self.table.data.get(campaign_id.encode())
        if not isinstance(data, bytes):
            return None
        state = CampaignState.from_bytes(data)
        for example in state.outbox:
            self.training.send_soon(key=Example.from_bytes(example).example_id.encode(),
                                    value=example, partition=0)
        return state

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
        """A rebalance: another worker may own some of these campaigns before they come back.

        Nothing is dropped or snapshotted here (the assignment is not settled yet, and a snapshot
        taken after the last commit could land after the next owner's).  Instead every campaign
        in memory is checked against its durable snapshot when next touched: if another owner
        advanced it meanwhile, its newer snapshot replaces the copy held here."""
        self.store.suspect_all()
