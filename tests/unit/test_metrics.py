"""Metric helpers against prometheus_client's own behaviour."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.metrics import observe_many


def histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("h_seconds", "h", buckets=(0.001, 0.01, 0.1, 1.0),
                               registry=registry)


def test_observe_many_exposes_what_observe_one_by_one_does() -> None:
    values = [0.0, 0.0005, 0.001, 0.002, 0.01, 0.0100001, 0.5, 1.0, 3.0, 250.0]
    one_registry, one = histogram()
    many_registry, many = histogram()
    for value in values:
        one.observe(value)
    observe_many(many, values)
    observe_many(many, [])
    assert generate_latest(many_registry) == generate_latest(one_registry)
    assert b'h_seconds_bucket{le="0.001"} 3.0' in generate_latest(many_registry)
