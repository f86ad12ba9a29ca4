"""A small Prometheus text-format registry.

Counters and gauges are plain attribute increments on the hot path; rendering happens only
when ``/metrics`` is scraped. A dependency-free registry keeps the per-event cost to one
integer add, which the SIP and RTP paths can afford.
"""

from __future__ import annotations

from collections.abc import Callable


class Metric:
    __slots__ = ("help", "kind", "labelnames", "name", "values")

    def __init__(self, name: str, help: str, kind: str, labelnames: tuple[str, ...]) -> None:
        self.name = name
        self.help = help
        self.kind = kind
        self.labelnames = labelnames
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1, *labels: str) -> None:
        self.values[labels] = self.values.get(labels, 0) + amount

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        if not self.values and not self.labelnames:
            lines.append(f"{self.name} 0")
        for labels, value in sorted(self.values.items()):
            if labels:
                pairs = ",".join(
                    f'{n}="{_escape(v)}"' for n, v in zip(self.labelnames, labels, strict=True)
                )
                lines.append(f"{self.name}{{{pairs}}} {_number(value)}")
            else:
                lines.append(f"{self.name} {_number(value)}")
        return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self._collectors: list[Callable[[], None]] = []

    def _add(self, name: str, help: str, kind: str, labelnames: tuple[str, ...]) -> Metric:
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = Metric(name, help, kind, labelnames)
        return metric

    def counter(self, name: str, help: str, labelnames: tuple[str, ...] = ()) -> Metric:
        return self._add(name, help, "counter", labelnames)

    def gauge(self, name: str, help: str, labelnames: tuple[str, ...] = ()) -> Metric:
        return self._add(name, help, "gauge", labelnames)

    def on_collect(self, collector: Callable[[], None]) -> None:
        """Run *collector* before each render, for gauges read from live state."""
        self._collectors.append(collector)

    def render(self) -> str:
        for collect in self._collectors:
            collect()
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
