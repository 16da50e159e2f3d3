"""What a client may hold of the agent: streams on one connection (announced, so a client queues
its 101st call instead of losing its other 100), connections in all (the excess closed, the agent
sampling and committing meanwhile), and connections that sit without a call (closed after
--connection-idle-timeout)."""

from __future__ import annotations

import resource
import socket as sockets
import sqlite3
import threading
import time

import grpc

from conftest import running_agent
from boxcar._proto.boxcar.v1 import agent_pb2 as ag
from boxcar._proto.boxcar.v1 import agent_pb2_grpc
from boxcar._proto.modelbox import modelbox_pb2 as mb
from boxcar._proto.modelbox import modelbox_pb2_grpc


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_hundred_and_fifty_streams_on_one_connection_all_complete(tmp_path):
    with running_agent(tmp_path, "--sample-interval", "0") as agent:
        parent = agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="streams", namespace="c")).experiment_id
        channel = grpc.insecure_channel(agent.target)  # one channel: one HTTP/2 connection
        stub = agent_pb2_grpc.AgentStub(channel)
        release = threading.Event()
        lock = threading.Lock()
        first_acks = []
        outcomes = {}

        def stream(index: int) -> None:
            def batches():
                yield ag.LogBatch(batch_id=1, series=[ag.SeriesRef(parent_id=parent, key=f"s{index}")],
                                  points=ag.FloatColumns(key=[0], step=[1], wallclock_ns=[1], value=[1.0]))
                release.wait(60)  # held open until the streams the agent allows are all open

            try:
                for _ in stub.Log(batches(), timeout=120):
                    with lock:
                        first_acks.append(index)
                outcomes[index] = "ok"
            except grpc.RpcError as error:
                outcomes[index] = error.code().name

        threads = [threading.Thread(target=stream, args=(index,)) for index in range(150)]
        for thread in threads:
            thread.start()
        # 100 streams open at once (the announced limit); the other 50 wait in the client's queue.
        wait_for(lambda: len(first_acks) >= 100, 60, f"only {len(first_acks)} streams were acknowledged")
        time.sleep(0.5)
        assert len(first_acks) == 100 and not outcomes, (len(first_acks), outcomes)
        release.set()
        for thread in threads:
            thread.join(120)
        channel.close()
        assert outcomes == {index: "ok" for index in range(150)}, {k: v for k, v in outcomes.items() if v != "ok"}
        [series] = agent_pb2_grpc.AgentStub(agent.channel).QueryMetrics(
            ag.QueryMetricsRequest(parent_id=parent, keys=["s149"])).series
        assert list(series.step) == [1]


def closed_by_the_agent(connection: sockets.socket) -> bool:
    """Whether the agent closed it: what it sent first (its HTTP/2 settings) is read past."""
    connection.setblocking(False)
    try:
        while connection.recv(65536):
            pass
        return True
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_thousands_of_held_connections_are_bounded_and_the_agent_keeps_working(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    held = []
    try:
        with running_agent(tmp_path, "--sample-interval", "0.2", "--max-connections", "1000") as agent:
            def committed_blocks() -> int:
                with sqlite3.connect(f"file:{agent.db}?mode=ro", uri=True) as connection:
                    return connection.execute("SELECT COUNT(*) FROM metric_blocks").fetchone()[0]

            for _ in range(3000):  # connections that say nothing: no HTTP/2 preface, no call
                connection = sockets.socket(sockets.AF_UNIX)
                connection.connect(str(agent.socket))
                held.append(connection)
            # 1,000 are held, less the few of the test's own client; the rest are closed as they come.
            wait_for(lambda: all(closed_by_the_agent(c) for c in held[1000:]), 60, "the excess connections were not closed")
            still_open = sum(not closed_by_the_agent(connection) for connection in held)
            assert 995 <= still_open <= 1000, still_open
            # A new client is refused while they are held (a connection of its own: gRPC would
            # otherwise share the test's channel's)...
            with grpc.insecure_channel(agent.target, options=[("grpc.use_local_subchannel_pool", 1)]) as refused:
                try:
                    cluster_members(refused, timeout=2)
                    raise AssertionError("a connection past the limit was served")
                except grpc.RpcError as error:
                    assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), error
            # ...and the agent samples and commits meanwhile: its descriptors are not the clients'.
            before = committed_blocks()
            wait_for(lambda: committed_blocks() > before, 30, "sampling stopped while clients held connections")
            assert "refusing connections" in agent.output() and "max_connections=1000" in agent.output(), agent.output()
            for connection in held:
                connection.close()
            held.clear()
            # Once they are gone, new clients are served again.
            wait_for(lambda: served(agent.target), 30, "the agent did not serve again after the connections closed")
    finally:
        for connection in held:
            connection.close()


def test_a_connection_without_a_call_is_closed_after_the_idle_timeout(tmp_path):
    with running_agent(tmp_path, "--sample-interval", "0", "--connection-idle-timeout", "2") as agent:
        opened = time.monotonic()
        silent = []
        for _ in range(50):  # never a byte: not even HTTP/2's preface
            connection = sockets.socket(sockets.AF_UNIX)
            connection.connect(str(agent.socket))
            silent.append(connection)
        try:
            wait_for(lambda: all(closed_by_the_agent(c) for c in silent), 30, "silent connections were not closed")
            assert time.monotonic() - opened >= 1.5  # not before the timeout
            assert served(agent.target)
        finally:
            for connection in silent:
                connection.close()


def cluster_members(channel: grpc.Channel, timeout: float) -> list:
    return list(modelbox_pb2_grpc.ModelStoreStub(channel).GetClusterMembers(
        mb.GetClusterMembersRequest(), timeout=timeout).members)


def served(target: str) -> bool:
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        try:
            return bool(cluster_members(channel, timeout=2))
        except grpc.RpcError:
            return False
