"""Python values to and from the wire: metric values, metadata (google.protobuf.Value), times."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Dict, Optional, Union

from google.protobuf import struct_pb2, timestamp_pb2

# Integers beyond this cannot pass through a double (google.protobuf.Value's one number type)
# unchanged; read back, integral numbers within it are ints again.
_EXACT_INTEGER = 2**53


def metric_value(value: Any) -> Union[float, str, bytes]:
    """A metric value as the wire carries it: numbers (numpy and torch scalars included) become
    floats, str stays str, bytes stays bytes. Anything else is a TypeError."""
    kind = type(value)
    if kind is float or kind is int:
        return float(value)
    if kind is str or kind is bytes:
        return value
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    scalar = _scalar(value)
    if scalar is not None:
        return float(scalar)
    raise TypeError(
        f"a metric value must be a number, str or bytes (or a numpy/torch scalar), not {kind.__name__}"
    )


def _scalar(value: Any) -> Optional[Union[int, float, bool]]:
    """A numpy or torch scalar (or one-element array/tensor) as a Python number, found by its
    ``item()`` method so that neither library is imported; None for anything else."""
    item = getattr(value, "item", None)
    if item is None or not callable(item):
        return None
    try:
        result = item()
    except (ValueError, RuntimeError, TypeError):
        return None  # more than one element
    return result if isinstance(result, (bool, int, float)) else None


def to_value(value: Any, path: str = "value") -> struct_pb2.Value:
    """A metadata value as google.protobuf.Value. Non-finite numbers and keys that are not str
    are refused here, with the path to the offending part, rather than by the agent."""
    out = struct_pb2.Value()
    if value is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, (int, float)):
        out.number_value = _finite(float(value), path)
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, dict):
        out.struct_value.CopyFrom(to_struct(value, path))
    elif isinstance(value, (list, tuple)):
        out.list_value.values.extend(to_value(item, f"{path}[{index}]") for index, item in enumerate(value))
    else:
        scalar = _scalar(value)
        if scalar is None:
            raise TypeError(f"{path}: a metadata value must be None, bool, a number, str, list or dict, not {type(value).__name__}")
        return to_value(scalar, path)
    return out


def to_struct(mapping: Dict[str, Any], path: str = "metadata") -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"{path}: metadata keys must be str, not {type(key).__name__}")
        out.fields[key].CopyFrom(to_value(item, f"{path}[{key!r}]"))
    return out


def from_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and abs(number) <= _EXACT_INTEGER:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return from_struct(value.struct_value.fields)
    if kind == "list_value":
        return [from_value(item) for item in value.list_value.values]
    return None


def from_struct(fields: Any) -> Dict[str, Any]:
    return {key: from_value(item) for key, item in fields.items()}


def _finite(number: float, path: str) -> float:
    if not math.isfinite(number):
        raise ValueError(f"{path}: metadata numbers must be finite, not {number}")
    return number


def nanoseconds(moment: Union[int, datetime, None], now: int) -> int:
    """Nanoseconds since the epoch: an int as given, a datetime converted, None → ``now``."""
    if moment is None:
        return now
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.astimezone()  # a naive datetime is local time, as datetime.now() gives
        delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if isinstance(moment, bool) or not isinstance(moment, int):
        raise TypeError(f"a wallclock time must be an int of nanoseconds since the epoch or a datetime, not {type(moment).__name__}")
    return moment


def timestamp(ns: int) -> timestamp_pb2.Timestamp:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def from_timestamp_ns(stamp: timestamp_pb2.Timestamp) -> int:
    return stamp.seconds * 1_000_000_000 + stamp.nanos


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> Optional[datetime]:
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, tz=timezone.utc)
