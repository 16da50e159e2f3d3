"""A client process holding uploads open: `python3 held_uploads.py SOCKET PARENT CHANNELS PER_CHANNEL`
connects CHANNELS channels, prints "connected" and waits for a line on stdin; then starts
CHANNELS × PER_CHANNEL uploads that send their metadata and a first chunk, then wait for another
line. Prints "refused" for each upload refused while they wait, then one JSON line of the status
codes and reasons the agent answered with."""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Clients" / "python"))
from boxcar._proto.modelbox import modelbox_pb2 as mb  # noqa: E402
from boxcar._proto.modelbox import modelbox_pb2_grpc  # noqa: E402


def main() -> None:
    socket, parent, channels, per_channel = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    release = threading.Event()
    outcomes: Counter = Counter()
    lock = threading.Lock()
    connections = [grpc.insecure_channel("unix://" + socket) for _ in range(channels)]
    # Connected before any upload holds a file: files and connections share the agent's limit,
    # and a connection made once other clients' files fill it is refused whole (GOAWAY), not
    # call by call.
    for connection in connections:
        grpc.channel_ready_future(connection).result(timeout=60)
    print("connected", flush=True)
    sys.stdin.readline()
    stubs = [modelbox_pb2_grpc.ModelStoreStub(connection) for connection in connections]

    def upload(index: int) -> None:
        def frames():
            yield mb.UploadFileRequest(metadata=mb.FileMetadata(parent_id=parent, file_type=mb.MODEL, checksum="", path=f"held-{index}"))
            yield mb.UploadFileRequest(chunks=b"x" * 1000)
            release.wait()

        try:
            stubs[index % channels].UploadFile(frames(), timeout=120)
            outcome = "OK"
        except grpc.RpcError as error:
            reason = dict(error.trailing_metadata() or ()).get("boxcar-reason", "")
            outcome = f"{error.code().name} {reason} {error.details()}"
        with lock:
            outcomes[outcome] += 1
            if not release.is_set() and outcome != "OK":
                print("refused", flush=True)

    threads = [threading.Thread(target=upload, args=(index,)) for index in range(channels * per_channel)]
    for thread in threads:
        thread.start()
    sys.stdin.readline()
    release.set()
    for thread in threads:
        thread.join()
    with lock:
        print(json.dumps(dict(outcomes)), flush=True)


if __name__ == "__main__":
    main()
