"""Usage: decoding the usage file and turning change events into per-unit lifetimes.

The fee table's start rule works per unit (a booth added in June is free in June even when the
contract started in April), so counts are not enough: each added unit becomes a ``Span`` with
its own start and end date. Removals without an ``id`` take the most recently added unit
(last in, first out). That choice is the one under which adding a unit can never lower a bill:
the unit removed instead is never older, so its minimum-period remainder is never smaller.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Protocol

import msgspec

from outbound_pro.billing.errors import UsageError
from outbound_pro.billing.model import Change, Outage, Suspension, Usage
from outbound_pro.billing.months import tokyo_date
from outbound_pro.billing.tariff import AT_MOST_PARENT, CONTRACT_UNITS, NEEDS_PARENT, Tariff


class UsageSource(Protocol):
    """Where usage comes from: a usage file today, the accounts database later. Both return
    the same ``Usage``, so the invoice a database produces can be checked from a file."""

    def usage(self, contract: str) -> Usage:
        """Usage of *contract* over its whole life (every change since service start)."""
        ...


class Span(msgspec.Struct, frozen=True):
    """One unit's life: provided from ``start`` through ``end`` (None: still provided).
    ``source`` is the index of the change that added it (None for contract-level spans)."""

    unit: str
    start: dt.date
    end: dt.date | None
    id: str | None = None
    source: int | None = None


class Timeline(msgspec.Struct, frozen=True):
    """Per unit, every span, in start order. Contract-level units are included."""

    spans: dict[str, tuple[Span, ...]]

    def of(self, unit: str) -> tuple[Span, ...]:
        return self.spans.get(unit, ())


#: One change adds or removes at most this many units: each is tracked on its own, and a
#: typo'd delta of millions would otherwise be billed (and held in memory) as given.
MAX_DELTA = 10_000

_PATH_RE = re.compile(r"\$\.(\w+)(?:\[(\d+)\])?")
_BYTE_RE = re.compile(r"\(byte (\d+)\)")
_UNKNOWN_RE = re.compile(r"unknown field `([^`]+)`")
_ELEMENTS: dict[str, type[msgspec.Struct]] = {
    "changes": Change,
    "outages": Outage,
    "suspensions": Suspension,
}


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _skip(text: str, i: int, also: str = "") -> int:
    """Index of the next character that is not JSON whitespace (nor in *also*)."""
    while i < len(text) and text[i] in " \t\n\r" + also:
        i += 1
    return i


def _locate(text: str) -> dict[str, int]:
    """Line numbers of the top-level keys and of each element of top-level arrays
    (``changes[3]`` -> 9), so an error can say where in the file to look. Best effort: on
    text that is not a JSON object it returns what it found so far."""
    decoder = json.JSONDecoder()
    found: dict[str, int] = {}
    i = _skip(text, 0)
    if not text.startswith("{", i):
        return found
    i += 1
    try:
        while True:
            i = _skip(text, i, ",")
            if i >= len(text) or text[i] == "}":
                return found
            key, i = decoder.raw_decode(text, i)
            i = _skip(text, _skip(text, i) + 1)  # past the ':'
            found[str(key)] = _line_of(text, i)
            if not text.startswith("[", i):
                _, i = decoder.raw_decode(text, i)
                continue
            i += 1
            index = 0
            while True:
                i = _skip(text, i, ",")
                if i >= len(text) or text[i] == "]":
                    i += 1
                    break
                found[f"{key}[{index}]"] = _line_of(text, i)
                _, i = decoder.raw_decode(text, i)
                index += 1
    except ValueError:
        return found


def decode_usage(data: bytes, tariff: Tariff, *, source: str = "usage") -> Usage:
    """Decode and check a usage file. Errors name the file, the line and the element."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8",
            source=source,
        ) from None
    try:
        usage = msgspec.json.decode(data, type=Usage)
    except msgspec.ValidationError as exc:
        message = str(exc)
        m = _PATH_RE.search(message)
        path = None if m is None else (m.group(1) + (f"[{m.group(2)}]" if m.group(2) else ""))
        lines = _locate(text)
        line = lines.get(path or "")
        unknown = _UNKNOWN_RE.search(message)
        if unknown is not None:
            struct = _ELEMENTS.get(m.group(1), Usage) if m is not None else Usage
            message += f"; allowed fields: {', '.join(struct.__struct_fields__)}"
            if path is None:
                line = lines.get(unknown.group(1))
        raise UsageError(message, path=path, line=line, source=source) from None
    except msgspec.DecodeError as exc:
        message = str(exc)
        m = _BYTE_RE.search(message)
        line = None if m is None else data[: int(m.group(1))].count(b"\n") + 1
        raise UsageError(message, line=line, source=source) from None
    try:
        build_timeline(usage, tariff)
    except UsageError as exc:
        raise exc.located(source, _locate(text).get(exc.path or "")) from None
    return usage


def _in_service(usage: Usage, day: dt.date) -> bool:
    return usage.service_start <= day and (usage.service_end is None or day <= usage.service_end)


def _period(usage: Usage) -> str:
    end = usage.service_end.isoformat() if usage.service_end else "open"
    return f"{usage.service_start} to {end}"


def _check_outages_and_suspensions(usage: Usage) -> None:
    for n, outage in enumerate(usage.outages):
        path = f"outages[{n}]"
        for name, moment in (("recognised", outage.recognised), ("restored", outage.restored)):
            if moment.tzinfo is None:
                raise UsageError(f"{name} {moment} needs a time zone, e.g. +09:00", path=path)
        if outage.restored <= outage.recognised:
            raise UsageError(
                f"restored {outage.restored.isoformat()} is not after recognised "
                f"{outage.recognised.isoformat()}",
                path=path,
            )
        for name, moment in (("recognised", outage.recognised), ("restored", outage.restored)):
            if not _in_service(usage, tokyo_date(moment)):
                raise UsageError(
                    f"{name} {moment.isoformat()} is outside the service period "
                    f"{_period(usage)} (Japan time)",
                    path=path,
                )
    for n, suspension in enumerate(usage.suspensions):
        path = f"suspensions[{n}]"
        if suspension.end is not None and suspension.end < suspension.start:
            raise UsageError(f"end {suspension.end} is before start {suspension.start}", path=path)
        for day in (suspension.start, suspension.end):
            if day is not None and not _in_service(usage, day):
                raise UsageError(
                    f"date {day} is outside the service period {_period(usage)}", path=path
                )


def _describe(change: Change) -> str:
    sign = "+" if change.delta > 0 else ""
    ident = f" (id {change.id})" if change.id is not None else ""
    return f"{change.unit} {sign}{change.delta}{ident} on {change.date}"


def build_timeline(usage: Usage, tariff: Tariff) -> Timeline:
    """Check *usage* and turn its changes into per-unit spans.

    Changes apply in date order, and in file order within a date. Refused, naming the change:
    an unknown unit, a zero delta, a date outside the service period, a removal of more units
    than are in service (a negative count), an ``id`` added twice or removed while not in
    service, a delta over ``MAX_DELTA``, and options outnumbering their parent at the end of
    a day.
    """
    if not usage.contract.strip():
        raise UsageError("contract is empty; give the contract ID, e.g. C-1", path="contract")
    if usage.service_end is not None and usage.service_end < usage.service_start:
        raise UsageError(
            f"service_end {usage.service_end} is before service_start {usage.service_start}",
            path="service_end",
        )
    _check_outages_and_suspensions(usage)
    known = tariff.units
    order = sorted(range(len(usage.changes)), key=lambda n: usage.changes[n].date)
    open_spans: dict[str, list[Span]] = {unit: [] for unit in known}
    closed: dict[str, list[Span]] = {unit: [] for unit in (*known, *CONTRACT_UNITS)}
    level_open: dict[str, dt.date] = {}
    followers = {src: level for level, src in CONTRACT_UNITS.items() if src is not None}
    last_touch: dict[str, int] = {}

    def check_day(day: dt.date) -> None:
        for child, parent in AT_MOST_PARENT.items():
            if len(open_spans.get(child, ())) > len(open_spans.get(parent, ())):
                culprit = max(last_touch.get(child, -1), last_touch.get(parent, -1))
                raise UsageError(
                    f"at the end of {day} there are {len(open_spans[child])} {child} but only "
                    f"{len(open_spans[parent])} {parent}; {child} is an option priced per "
                    f"{parent}, so there can be no more {child} than {parent}",
                    path=f"changes[{culprit}]",
                )
        for child, parent in NEEDS_PARENT.items():
            if open_spans.get(child) and not open_spans.get(parent):
                culprit = max(last_touch.get(child, -1), last_touch.get(parent, -1))
                raise UsageError(
                    f"at the end of {day} there are {len(open_spans[child])} {child} but no "
                    f"{parent}; a {child} is set on a {parent}, so add a {parent} first",
                    path=f"changes[{culprit}]",
                )

    current_day: dt.date | None = None
    for n in order:
        change = usage.changes[n]
        path = f"changes[{n}]"
        if current_day is not None and change.date != current_day:
            check_day(current_day)
        current_day = change.date
        if change.unit not in known:
            raise UsageError(
                f"unknown unit {change.unit!r}; units are {', '.join(sorted(known))}", path=path
            )
        if change.delta == 0:
            raise UsageError(f"{_describe(change)}: delta 0 changes nothing; remove it", path=path)
        if not _in_service(usage, change.date):
            raise UsageError(
                f"{_describe(change)} is outside the service period {_period(usage)}", path=path
            )
        if abs(change.delta) > MAX_DELTA:
            raise UsageError(
                f"{_describe(change)}: more than {MAX_DELTA:,} units in one change; "
                "check the number",
                path=path,
            )
        if change.id is not None and abs(change.delta) != 1:
            raise UsageError(f"{_describe(change)}: with an id, delta must be +1 or -1", path=path)
        stack = open_spans[change.unit]
        before = len(stack)
        if change.delta > 0:
            if change.id is not None and any(s.id == change.id for s in stack):
                raise UsageError(f"{_describe(change)}: that id is already in service", path=path)
            stack.extend(
                Span(change.unit, change.date, None, change.id, n) for _ in range(change.delta)
            )
        else:
            if before + change.delta < 0:
                raise UsageError(
                    f"{_describe(change)} would leave {before + change.delta} {change.unit} "
                    f"({before} in service then); remove at most {before}",
                    path=path,
                )
            if change.id is not None:
                matches = [k for k, s in enumerate(stack) if s.id == change.id]
                if not matches:
                    raise UsageError(f"{_describe(change)}: that id is not in service", path=path)
                taken = [stack.pop(matches[0])]
            else:
                taken = [stack.pop() for _ in range(-change.delta)]
            closed[change.unit].extend(
                msgspec.structs.replace(span, end=change.date) for span in taken
            )
        last_touch[change.unit] = n
        level = followers.get(change.unit)
        if level is not None:
            after = len(stack)
            if before == 0 and after > 0:
                level_open[level] = change.date
            elif before > 0 and after == 0:
                closed[level].append(Span(level, level_open.pop(level), change.date))
    if current_day is not None:
        check_day(current_day)

    end = usage.service_end
    for unit, stack in open_spans.items():
        closed[unit].extend(msgspec.structs.replace(span, end=end) for span in stack)
    for level, start in level_open.items():
        closed[level].append(Span(level, start, end))
    closed["contract"].append(Span("contract", usage.service_start, end))
    spans = {
        unit: tuple(sorted(items, key=lambda s: (s.start, s.source or 0)))
        for unit, items in closed.items()
        if items
    }
    return Timeline(spans)
