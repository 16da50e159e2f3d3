"""Unary LogMetrics to a server, IN_FLIGHT calls at a time (threads), CALLS in all: prints calls/s,
p50, p99 and the server's CPU a call, read from /proc/PID/stat around the calls.

    python3 client.py ADDRESS SERVER_PID IN_FLIGHT CALLS

The same request bytes go to every server (grpcio's generic calls, as ModelBox's client sends
them), so that the agent and a server that stores nothing are timed alike."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../Clients/python"))
import grpc  # noqa: E402
from boxcar._proto.modelbox import modelbox_pb2 as mb  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    address, pid, in_flight, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    channel = grpc.insecure_channel(address)
    created = channel.unary_unary("/modelbox.ModelStore/CreateExperiment")(
        mb.CreateExperimentRequest(name="floor", namespace="floor", owner="bench").SerializeToString())
    experiment = mb.CreateExperimentResponse.FromString(created).experiment_id
    call = channel.unary_unary("/modelbox.ModelStore/LogMetrics")

    def request(step: int) -> bytes:
        return mb.LogMetricsRequest(parent_id=experiment, key="loss", value=mb.MetricsValue(
            step=step, wallclock_time=1_700_000_000 + step, f_val=0.5)).SerializeToString()

    for step in range(200):  # warm up
        call(request(step))
    latencies: list[float] = []
    lock = threading.Lock()
    steps = iter(range(1000, 1000 + total))

    def worker() -> None:
        mine = []
        while True:
            with lock:
                step = next(steps, None)
            if step is None:
                break
            started = time.perf_counter()
            call(request(step))
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    before, started = cpu_seconds(pid), time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(in_flight)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, used = time.perf_counter() - started, cpu_seconds(pid) - before
    latencies.sort()
    print(f"in_flight={in_flight} calls/s={total / wall:.0f} p50={latencies[len(latencies) // 2] * 1e6:.0f}us "
          f"p99={latencies[int(len(latencies) * 0.99)] * 1e6:.0f}us server_cpu={used / total * 1e6:.0f}us/call")


if __name__ == "__main__":
    main()
