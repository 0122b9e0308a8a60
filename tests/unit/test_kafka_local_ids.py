"""scripts/kafka-local's cluster ids: kafka-storage reads an id starting with '-' as an option
and refuses to format, which failed one broker start in 64 (and with it a whole test run)."""

from __future__ import annotations

import base64
import importlib.machinery
import importlib.util

from tests.conftest import KAFKA_LOCAL


def test_cluster_ids_are_kafka_uuids_that_never_start_with_a_dash() -> None:
    loader = importlib.machinery.SourceFileLoader("kafka_local", str(KAFKA_LOCAL))
    spec = importlib.util.spec_from_loader("kafka_local", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    ids = [module.new_cluster_id() for _ in range(5000)]  # ~78 would start with '-' unfiltered
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
