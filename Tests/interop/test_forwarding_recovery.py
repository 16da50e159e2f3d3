"""Forwarding through what goes wrong in a fleet: the collector in use killed mid-batch with
another of the same PostgreSQL to go to, a database file copied to another machine, PostgreSQL
restored from an earlier dump, and the agent's disk full while the collector is away. Each ends
with every record in PostgreSQL exactly once, counted against what the agent holds."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import grpc

from conftest import Agent, agent_binary, running_agent
from postgres import Collector, upstreams, wait_for, wait_until_forwarded
from test_forwarding import agent_identity, assert_agent_held_once, assert_held_once, log_known_set
from test_identity import as_machine

from boxcar._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc
from boxcar._proto.modelbox import modelbox_pb2 as mb

KEYS = 1_000


def wide_batch(parent: str, batch_id: int) -> agent_pb2.LogBatch:
    """One point of each of KEYS series: a metric block (one outbox row) per key."""
    return agent_pb2.LogBatch(
        batch_id=batch_id, series=[agent_pb2.SeriesRef(parent_id=parent, key=f"k{i}") for i in range(KEYS)],
        points=agent_pb2.FloatColumns(key=list(range(KEYS)), step=[batch_id] * KEYS,
                                      wallclock_ns=[time.time_ns()] * KEYS, value=[float(batch_id)] * KEYS))


def log_wide(agent, parent: str, batches: range) -> list[int]:
    """Streams the batches; returns those acknowledged (all, or those before a refusal)."""
    acknowledged = []
    with grpc.insecure_channel(agent.target) as channel:
        try:
            for ack in agent_pb2_grpc.AgentStub(channel).Log((wide_batch(parent, b) for b in batches), timeout=120):
                acknowledged.append(ack.batch_id)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            assert ("boxcar-reason", "disk-full") in error.trailing_metadata(), error
    return acknowledged


def assert_points_once(database, parent: str, batches: list[int]) -> None:
    held = database.sql(f"""
        SELECT count(*) || ',' || count(DISTINCT (key, step)) FROM public.boxcar_points WHERE parent_id = '{parent}'""")
    assert held == f"{len(batches) * KEYS},{len(batches) * KEYS}"
    steps = database.sql(f"SELECT string_agg(DISTINCT step::text, ',') FROM public.boxcar_points WHERE parent_id = '{parent}'")
    assert sorted(int(s) for s in steps.split(",")) == sorted(batches)


class HeldLock:
    """A psql session holding `LOCK TABLE … IN SHARE MODE` until released: inserts into the table
    wait behind it, so a collector's batch stays in the middle of its transaction."""

    def __init__(self, cluster, database: str, table: str):
        self.session = subprocess.Popen(
            [str(cluster.bin / "psql"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "boxcar", "-d", database,
             "-v", "ON_ERROR_STOP=1", "-Atq"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.session.stdin.write(f"BEGIN; LOCK TABLE {table} IN SHARE MODE; SELECT 'locked';\n")
        self.session.stdin.flush()
        assert self.session.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.session.poll() is None:
            self.session.communicate("ROLLBACK;\n", timeout=30)


def test_two_collectors_one_killed_mid_batch_the_other_takes_over_exactly_once(database, postgres_cluster, tmp_path):
    first = Collector(tmp_path / "c", database, name="a")
    second = Collector(tmp_path / "c", database, name="b")
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    lock = None
    try:
        # A backlog of 30,000 blocks (8 batches of up to 4,096), logged before forwarding is on.
        with running_agent(agent_dir, "--sample-interval", "0") as agent:
            parent = agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="wide", namespace="f")).experiment_id
            batches = log_wide(agent, parent, range(1, 31))
            assert len(batches) == 30
        first.start()
        second.start()
        # The first collector's batches will stop in the middle of their transaction (the agent's
        # cursor locked, the rows' insert waiting), and it is killed there.
        lock = HeldLock(postgres_cluster, database.name, "boxcar.metric_blocks")
        # Both collectors serve one PostgreSQL; the agent takes the first it is given.
        with running_agent(agent_dir, "--upstream", f"{first.target},{second.target}", "--sample-interval", "0") as agent:
            wait_for(lambda: database.scalar("SELECT count(*) FROM pg_locks WHERE NOT granted") > 0, 60,
                     "a batch of the first collector to wait inside its transaction")
            assert upstreams(agent)[0].connected and upstreams(agent)[0].records_behind > 0
            first.kill()
            # Its transaction ends when PostgreSQL sees the connection gone: the insert finishes,
            # the next read finds no client, and all of it is rolled back.
            lock.release()
            wait_for(lambda: upstreams(agent)[1].connected, 120, "the agent to go on with the second collector")
            wait_until_forwarded(agent, timeout=120)
            assert all(status.quarantined == 0 for status in upstreams(agent))
        second.stop()
        assert_points_once(database, parent, batches)
        assert_agent_held_once(database, agent_dir)
    finally:
        if lock is not None:
            lock.release()
        first.kill()
        second.kill()


def test_a_copied_database_forwards_under_its_own_id(database, tmp_path):
    collector = Collector(tmp_path / "c", database)
    collector.start()
    original_dir, copy_dir = tmp_path / "a", tmp_path / "b"
    original_dir.mkdir()
    copy_dir.mkdir()
    try:
        with running_agent(original_dir, "--upstream", collector.target, "--sample-interval", "0") as original:
            before = log_known_set(original, tmp_path, "before-copy")
            wait_until_forwarded(original)
        for name in ("boxcar.db", "boxcar.db-wal"):
            if (original_dir / name).exists():
                shutil.copy(original_dir / name, copy_dir / name)
        copy = Agent(agent_binary(), copy_dir, copy_dir / "agent.sock")
        copy.prefix = as_machine(tmp_path, "boxcar-copy-node")
        copy.extra_args = ["--upstream", collector.target, "--sample-interval", "0"]
        copy.start()
        try:
            after = log_known_set(copy, tmp_path, "after-copy")
            wait_until_forwarded(copy)
        finally:
            copy.stop()
        original_id, copy_id = agent_identity(original_dir), agent_identity(copy_dir)
        assert original_id != copy_id
        hosts = database.sql("SELECT string_agg(agent_id || '=' || host, ',' ORDER BY host) FROM boxcar.agents")
        assert set(hosts.split(",")) == {f"{original_id}={os.uname().nodename}", f"{copy_id}=boxcar-copy-node"}
        # What the copy held from before is the original's, sent once; the copy sends only its own.
        assert_held_once(database, before)
        assert_held_once(database, after)
        assert database.scalar(f"""
            SELECT count(*) FROM boxcar.metric_blocks WHERE agent_id = '{copy_id}' AND parent_id = '{before["id"]}'""") == 0
    finally:
        collector.stop()


def test_postgresql_restored_from_an_earlier_dump_is_healed(database, postgres_cluster, tmp_path):
    collector = Collector(tmp_path / "c", database)
    collector.start()
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    dump = tmp_path / "boxcar.dump"
    client = ["-h", "127.0.0.1", "-p", str(postgres_cluster.port), "-U", "boxcar"]
    try:
        with running_agent(agent_dir, "--upstream", collector.target, "--sample-interval", "0") as agent:
            before = log_known_set(agent, tmp_path, "before-dump")
            wait_until_forwarded(agent)
            subprocess.run([str(postgres_cluster.bin / "pg_dump"), *client, "-Fc", "-f", str(dump), database.name],
                           check=True, capture_output=True)
            after = log_known_set(agent, tmp_path, "after-dump")
            wait_until_forwarded(agent)
            # PostgreSQL loses everything after the dump: restored into a new database of the name.
            collector.stop()
            postgres_cluster.psql("postgres", f"DROP DATABASE {database.name} WITH (FORCE)")
            postgres_cluster.psql("postgres", f"CREATE DATABASE {database.name}")
            subprocess.run([str(postgres_cluster.bin / "pg_restore"), *client, "-d", database.name, str(dump)],
                           check=True, capture_output=True)
            assert database.scalar(f"SELECT count(*) FROM boxcar.experiments WHERE id = '{after['id']}'") == 0
            collector.start()
            wait_for(lambda: "the upstream holds less than it acknowledged" in agent.output(), 120,
                     "the agent to see the collector's cursor behind")
            wait_until_forwarded(agent, timeout=120)
        assert_held_once(database, before)
        assert_held_once(database, after)
        assert_agent_held_once(database, agent_dir, at_least=10)
    finally:
        collector.stop()


def test_a_full_disk_during_an_outage_refuses_ingest_and_loses_nothing_acknowledged(database, small_disk, tmp_path):
    collector = Collector(tmp_path / "c", database)
    with running_agent(small_disk, "--upstream", collector.target, "--sample-interval", "0",
                       socket_path=tmp_path / "full.sock") as agent:
        parent = agent.stub.CreateExperiment(mb.CreateExperimentRequest(name="full", namespace="f")).experiment_id
        # The collector is away: the agent logs until its disk is full.
        stored = log_wide(agent, parent, range(1, 10_000))
        assert 0 < len(stored) < 9_999, "the disk never filled"
        # Whatever room the last refused write left goes too: now not even an acknowledgment
        # can be committed, and the agent must forward all the same.
        with open(small_disk / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 512)
            except OSError:
                pass
        # The collector is back: everything acknowledged reaches it, with the disk still full.
        collector.start()
        try:
            wait_until_forwarded(agent, timeout=120)
            assert upstreams(agent)[0].quarantined == 0
        finally:
            collector.stop()
    assert_points_once(database, parent, stored)


def test_postgresql_down_when_the_collector_starts(database, postgres_cluster, tmp_path):
    """The collector waits for PostgreSQL and says so; agents keep their records meanwhile, and
    forward them once it is up."""
    collector = Collector(tmp_path / "c", database)
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    postgres_cluster.stop()
    try:
        collector.start(wait=False)
        # Said at once, with PostgreSQL's reason; and a collector stopped while it waits stops cleanly.
        wait_for(lambda: "cannot reach PostgreSQL" in collector.output(), 20, "the collector to say it waits")
        assert "Connection refused" in collector.output()
        impatient = Collector(tmp_path / "c", database, name="impatient")
        impatient.start(wait=False)
        wait_for(lambda: "cannot reach PostgreSQL" in impatient.output(), 20, "the second collector to wait")
        impatient.stop()
        assert collector.process.poll() is None, "the collector gave up"
        with running_agent(agent_dir, "--upstream", collector.target, "--sample-interval", "0") as agent:
            expected = log_known_set(agent, tmp_path, "while-down")
            assert upstreams(agent)[0].records_behind > 0
            postgres_cluster.start()
            collector.wait_until_listening()
            wait_until_forwarded(agent, timeout=120)
        assert_held_once(database, expected)
    finally:
        postgres_cluster.start_if_stopped()
        collector.stop()


def test_the_collectors_retention_drops_old_day_partitions(database, tmp_path):
    """Points are kept in a partition per UTC day; --retention drops the days past it and deletes
    the default partition's rows past it, and keeps the rest."""
    collector = Collector(tmp_path / "c", database)
    collector.start()  # migrates, and makes yesterday's, today's and tomorrow's partitions
    collector.stop()
    day = 86_400 * 10**9
    now = time.time_ns()
    old_day = (now // day - 400) * day  # a day 400 days ago, with a partition of its own
    old_name = time.strftime("%Y%m%d", time.gmtime(old_day // 10**9))
    database.sql(f"CREATE TABLE boxcar.metric_blocks_{old_name} PARTITION OF boxcar.metric_blocks "
                 f"FOR VALUES FROM ({old_day}) TO ({old_day + day})")

    def block(seq: int, wallclock: int) -> str:
        return (f"('{uuid.UUID(int=1)}', {seq}, 'run', 'loss', 1, 0, 0, {wallclock}, {wallclock}, '\\x01'::bytea)")
    database.sql("INSERT INTO boxcar.metric_blocks (agent_id, seq, parent_id, key, count, step_min, step_max, "
                 "wallclock_min, wallclock_max, data) VALUES "
                 f"{block(1, old_day + 5)}, {block(2, old_day - 300 * day)}, {block(3, now)}")
    assert database.scalar("SELECT count(*) FROM boxcar.metric_blocks_default") == 1

    collector = Collector(tmp_path / "c", database, "--retention", "30d", name="kept")
    collector.start()
    try:
        wait_for(lambda: "retention deleted rows of the default partitions" in collector.output(), 60,
                 "the collector's retention")
        assert f"metric_blocks_{old_name}" in collector.output()
        assert database.sql("SELECT string_agg(seq::text, ',') FROM boxcar.metric_blocks") == "3"
        assert database.scalar(f"SELECT count(*) FROM pg_class WHERE relname = 'metric_blocks_{old_name}'") == 0
        today = time.strftime("%Y%m%d", time.gmtime(now // 10**9))
        assert database.scalar(f"SELECT count(*) FROM pg_class WHERE relname = 'metric_blocks_{today}'") == 1
    finally:
        collector.stop()
