"""Benchmark of the SDK's logging path. Prints one JSON line per measurement.

    python3 Clients/python/bench/bench_log.py [--socket PATH] [--binary PATH] [--calls N]

Without --socket it starts the agent (--binary, else $BOXCAR_BIN, else the release build) on a
temporary directory, sampling off. Measures, each with a baseline from the same run:
- log_call: the cost of ``log_metrics`` with 10 keys in the calling thread, per call (median of
  every call timed alone), against appending a copy of the dict to a deque (the least any
  buffering logger can do);
- end_to_end: points per second from ``log_metrics`` to the agent's acknowledgement (``flush``),
  against streaming the same points as prebuilt LogBatch messages from Python (the transport).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
REPO = HERE.parents[2]

import grpc  # noqa: E402

from boxcar import Boxcar  # noqa: E402
from boxcar._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402
from boxcar._proto.modelbox import modelbox_pb2, modelbox_pb2_grpc  # noqa: E402

KEYS = [f"train/metric_{index}" for index in range(10)]


def report(**fields):
    print(json.dumps(fields, sort_keys=True), flush=True)


def start_agent(binary: str, directory: str) -> subprocess.Popen:
    socket = os.path.join(directory, "run", "agent.sock")
    os.makedirs(os.path.dirname(socket), mode=0o700)
    process = subprocess.Popen(
        [binary, "agent", "--db", os.path.join(directory, "boxcar.db"), "--socket", socket, "--sample-interval", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(socket):
            return process
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the agent did not start")


def log_call(mbox: Boxcar, calls: int) -> None:
    experiment = mbox.new_experiment(name=f"bench-call-{time.time_ns()}", namespace="bench", attach=False)
    metrics = {key: 0.5 for key in KEYS}
    clock = time.perf_counter_ns
    baseline_buffer: collections.deque = collections.deque()
    baseline, sdk = [], []
    for step in range(calls):
        started = clock()
        baseline_buffer.append((step, dict(metrics)))
        baseline.append(clock() - started)
        if len(baseline_buffer) > 10_000:
            baseline_buffer.clear()
    for step in range(calls):
        metrics["train/metric_0"] = float(step)
        started = clock()
        experiment.log_metrics(metrics, step=step)
        sdk.append(clock() - started)
    mbox.flush()
    sdk_us = statistics.median(sdk) / 1000
    base_us = statistics.median(baseline) / 1000
    report(measurement="log_call", keys=len(KEYS), calls=calls, median_us=round(sdk_us, 2),
           p99_us=round(sorted(sdk)[int(len(sdk) * 0.99)] / 1000, 2),
           baseline="deque.append(dict(metrics))", baseline_median_us=round(base_us, 2),
           ratio=round(sdk_us / base_us, 1))


def end_to_end(mbox: Boxcar, target: str, calls: int) -> None:
    experiment = mbox.new_experiment(name=f"bench-e2e-{time.time_ns()}", namespace="bench", attach=False)
    metrics = {key: 0.5 for key in KEYS}
    started = time.perf_counter()
    for step in range(calls):
        metrics["train/metric_0"] = float(step)
        experiment.log_metrics(metrics, step=step)
    if not mbox.flush(timeout=300):
        raise SystemExit("flush timed out")
    seconds = time.perf_counter() - started
    points = calls * len(KEYS)

    # The baseline: the same points as LogBatch messages built beforehand (2,000 steps × 10
    # keys each), streamed from Python with 32 in flight.
    channel = grpc.insecure_channel(target)
    parent = modelbox_pb2_grpc.ModelStoreStub(channel).CreateExperiment(
        modelbox_pb2.CreateExperimentRequest(name=f"bench-raw-{time.time_ns()}", namespace="bench")).experiment_id
    steps_per_batch = 2_000
    batches = []
    for first in range(0, calls, steps_per_batch):
        count = min(steps_per_batch, calls - first)
        batches.append(agent_pb2.LogBatch(
            batch_id=len(batches) + 1,
            series=[agent_pb2.SeriesRef(parent_id=parent, key=key) for key in KEYS],
            points=agent_pb2.FloatColumns(
                key=[key for _ in range(count) for key in range(len(KEYS))],
                step=[first + step for step in range(count) for _ in KEYS],
                wallclock_ns=[time.time_ns()] * (count * len(KEYS)),
                value=[0.5] * (count * len(KEYS)))))
    raw_started = time.perf_counter()
    acks = list(agent_pb2_grpc.AgentStub(channel).Log(iter(batches)))
    raw_seconds = time.perf_counter() - raw_started
    channel.close()
    assert len(acks) == len(batches)
    rate = points / seconds
    raw_rate = points / raw_seconds
    report(measurement="end_to_end", points=points, seconds=round(seconds, 3), points_per_s=round(rate),
           baseline="prebuilt LogBatch messages over grpcio", baseline_points_per_s=round(raw_rate),
           ratio=round(rate / raw_rate, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket")
    parser.add_argument("--binary", default=os.environ.get("BOXCAR_BIN", str(REPO / ".build-release" / "release" / "boxcar")))
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3, help="end-to-end runs; each is reported")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="boxcar-bench-") as directory:
        agent = None if arguments.socket else start_agent(arguments.binary, directory)
        socket = arguments.socket or os.path.join(directory, "run", "agent.sock")
        target = "unix://" + os.path.abspath(socket)
        try:
            with Boxcar(socket) as mbox:
                log_call(mbox, arguments.calls)
                for _ in range(arguments.runs):
                    end_to_end(mbox, target, arguments.calls)
        finally:
            if agent is not None:
                agent.kill()
                agent.wait()


if __name__ == "__main__":
    main()
