"""Topic handles: every socialstream topic carries raw bytes (the codecs live in streams/)."""

from __future__ import annotations

import faust


def raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    """A topic of bytes keys and values that Faust passes through untouched."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=partitions)
