"""What the ModelBox interop tests share: requests built as an existing ModelBox client builds them,
uploads and downloads frame by frame, and the check that a call was refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from boxcar._proto.modelbox import modelbox_pb2 as mb

NAMESPACE = "interop"
CHUNK = 64 * 1024
UNKNOWN_ID = "0123456789abcdef0123456789abcdef01234567"


def struct(values: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def metadata(values: dict) -> mb.Metadata:
    return mb.Metadata(metadata=dict(struct(values).fields))


def modelbox_id(name: str, namespace: str) -> str:
    """How ModelBox derives an experiment id."""
    return hashlib.sha1(name.encode() + namespace.encode()).hexdigest()


def create_experiment(stub, name="mnist", namespace=NAMESPACE, meta=None) -> str:
    response = stub.CreateExperiment(
        mb.CreateExperimentRequest(
            name=name,
            owner="ada@example.com",
            namespace=namespace,
            framework=mb.PYTORCH,
            task="classification",
            metadata=metadata(meta or {}),
            external_id="run-42",
        )
    )
    return response.experiment_id


def upload_frames(parent_id: str, path: str, data: bytes, checksum: str):
    """The frames the ModelBox client sends: metadata first, then the bytes in chunks."""
    yield mb.UploadFileRequest(
        metadata=mb.FileMetadata(parent_id=parent_id, file_type=mb.MODEL, checksum=checksum, path=path)
    )
    for start in range(0, len(data), CHUNK):
        yield mb.UploadFileRequest(chunks=data[start : start + CHUNK])


def upload(stub, parent_id: str, path: str, data: bytes, checksum: str | None = None) -> str:
    checksum = hashlib.md5(data).hexdigest() if checksum is None else checksum
    return stub.UploadFile(upload_frames(parent_id, path, data, checksum)).file_id


def download(stub, file_id: str) -> tuple[list[mb.DownloadFileResponse], bytes]:
    frames = list(stub.DownloadFile(mb.DownloadFileRequest(file_id=file_id), timeout=30))
    data = b"".join(frame.chunks for frame in frames[1:])
    return frames, data


def refused(code: grpc.StatusCode, call, *args, **kwargs) -> grpc.RpcError:
    """Makes the call (draining a response stream) and asserts it fails with `code` and a message."""
    with pytest.raises(grpc.RpcError) as raised:
        result = call(*args, timeout=30, **kwargs)
        if hasattr(result, "__next__"):  # a response stream: its status comes at the end
            list(result)
    error = raised.value
    assert error.code() == code, f"expected {code}, got {error.code()}: {error.details()}"
    assert error.details(), f"{code} carries no message"
    return error


def files_under(directory: Path) -> set[Path]:
    return {path for path in directory.rglob("*") if path.is_file()}


def by_key(response: mb.GetMetricsResponse) -> dict[str, list[mb.MetricsValue]]:
    keys = [series.key for series in response.metrics]
    assert len(keys) == len(set(keys)), f"one Metrics entry per key, got keys {keys}"
    return {series.key: list(series.values) for series in response.metrics}


def timestamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
