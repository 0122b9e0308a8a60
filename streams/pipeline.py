"""The one straight line every valid event takes: event -> state -> features -> models -> policy.

For now only the entry point exists (the learning core and the policy fill it in); the ingest agent
and offline replay both call ``Pipeline.process`` so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.events import SocialEvent


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one event produced.  Recommendations arrive with the policy stage."""

    event: SocialEvent
    recommendations: tuple[object, ...] = ()


class Pipeline:
    """Stateful per worker; ``process`` is called once per valid event, in partition order."""

    def process(self, event: SocialEvent) -> Outcome:
        return Outcome(event)
