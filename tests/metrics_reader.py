"""``/metrics`` read as Prometheus reads it: through prometheus_client's own
text parser, as {(sample name, labels): value}, and counter deltas as integers."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition; parsing fails loudly on a malformed one."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a labelled counter not incremented yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> int:
    """How much a counter grew, as an exact integer (it must be one)."""
    grew = value(after, name, **labels) - value(before, name, **labels)
    assert grew == int(grew), (name, labels, grew)
    return int(grew)


def hold_deltas(before: Samples, after: Samples) -> Mapping[str, int]:
    """``creditline_holds_total`` growth by event."""
    return {
        event: delta(before, after, "creditline_holds_total", event=event)
        for event in ("taken", "settled", "released", "expired")
    }
