"""What the shipper buffers (one step's points, an event, a metadata update) and the
``LogBatch`` it makes of them: points as packed columns, one series reference per key."""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Tuple, Union

from ._proto.boxcar.v1 import agent_pb2

BATCH_POINTS = 20_000  # points per batch, at most (the agent takes up to 200,000)
BATCH_SERIES = 10_000  # series, and events plus metadata updates, per batch (the agent's limit)


class Points(NamedTuple):
    """The metrics of one step of one parent, values already float, str or bytes."""

    parent: str
    step: int
    wallclock_ns: int
    values: Dict[str, Any]

    @property
    def records(self) -> int:
        return len(self.values)


class EventRecord(NamedTuple):
    event: agent_pb2.ParentEvent
    records: int = 1


class MetadataRecord(NamedTuple):
    update: agent_pb2.MetadataUpdate
    records: int = 1


Item = Union[Points, EventRecord, MetadataRecord]


def build_batch(items: List[Item], batch_id: int) -> Tuple[agent_pb2.LogBatch, int, List[Item]]:
    """One LogBatch from buffered items, and the items that did not fit (too many series)."""
    series: Dict[str, Dict[str, int]] = {}
    refs: List[agent_pb2.SeriesRef] = []
    keys: List[int] = []
    steps: List[int] = []
    walls: List[int] = []
    values: List[float] = []
    strings: List[agent_pb2.StringPoint] = []
    blobs: List[agent_pb2.BytesPoint] = []
    events: List[agent_pb2.ParentEvent] = []
    metadata: List[agent_pb2.MetadataUpdate] = []
    records = 0
    for position, item in enumerate(items):
        if type(item) is Points:
            parent, step, wall, metrics = item
            indexes = series.get(parent)
            if indexes is None:
                indexes = series[parent] = {}
            if len(refs) + len(metrics) > BATCH_SERIES and position > 0:
                return _batch(batch_id, refs, keys, steps, walls, values, strings, blobs, events, metadata), records, items[position:]
            for key, value in metrics.items():
                index = indexes.get(key)
                if index is None:
                    index = indexes[key] = len(refs)
                    refs.append(agent_pb2.SeriesRef(parent_id=parent, key=key))
                kind_of_value = type(value)
                if kind_of_value is float:
                    keys.append(index)
                    steps.append(step)
                    walls.append(wall)
                    values.append(value)
                elif kind_of_value is str:
                    strings.append(agent_pb2.StringPoint(key=index, step=step, wallclock_ns=wall, value=value))
                else:
                    blobs.append(agent_pb2.BytesPoint(key=index, step=step, wallclock_ns=wall, value=value))
            records += len(metrics)
        else:
            if len(events) + len(metadata) >= BATCH_SERIES and position > 0:
                return _batch(batch_id, refs, keys, steps, walls, values, strings, blobs, events, metadata), records, items[position:]
            if type(item) is EventRecord:
                events.append(item.event)
            else:
                metadata.append(item.update)
            records += 1
    return _batch(batch_id, refs, keys, steps, walls, values, strings, blobs, events, metadata), records, []


def _batch(batch_id, refs, keys, steps, walls, values, strings, blobs, events, metadata) -> agent_pb2.LogBatch:
    return agent_pb2.LogBatch(
        batch_id=batch_id,
        series=refs,
        points=agent_pb2.FloatColumns(key=keys, step=steps, wallclock_ns=walls, value=values),
        string_points=strings,
        bytes_points=blobs,
        events=events,
        metadata=metadata,
    )
