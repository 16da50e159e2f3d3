"""Forwarding: agents (`--upstream`) into a collector (`boxcar collector`) on a real PostgreSQL.

Every test counts what arrived through PostgreSQL itself (the `public` views and the `boxcar`
tables), so "exactly once" means: every record logged is there, none twice.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
import time
import uuid
from pathlib import Path

import grpc
import pytest

from conftest import running_agent
from postgres import Collector, upstreams, wait_for, wait_until_forwarded

from boxcar import Boxcar, Event, EventSource
from boxcar._proto.boxcar.v1 import collector_pb2, collector_pb2_grpc
from boxcar._proto.modelbox import modelbox_pb2 as mb

STEPS = 300


def log_known_set(agent, tmp_path: Path, name: str) -> dict:
    """Logs through the published-client shapes (the SDK's Log stream, unary LogMetrics, events,
    metadata, an upload); returns what PostgreSQL must then hold for the experiment."""
    blob = os.urandom(2 * 1024 * 1024 + 5)  # three chunks
    artifact = tmp_path / f"{name}.pt"
    artifact.write_bytes(blob)
    with Boxcar(agent.target) as mbox:
        experiment = mbox.new_experiment(name=name, owner="fleet@example.org", namespace="fleet")
        experiment.update_metadata("hyperparams", {"lr": 0.0002, "layers": 3})
        for step in range(STEPS):
            experiment.log_metrics({"loss": 1.0 / (step + 1), "accuracy": step / STEPS}, step=step)
        experiment.log_event(Event(name="epoch_done", source=EventSource(name="trainer"),
                                   wallclock_time=1_700_000_000_000, metadata={"epoch": 1}))
        experiment.upload_artifact([str(artifact)])
        assert mbox.flush(timeout=30)
        for step in range(5):
            agent.stub.LogMetrics(mb.LogMetricsRequest(
                parent_id=experiment.id, key="unary/lr", value=mb.MetricsValue(step=step, f_val=0.5)))
        experiment_id = experiment.id
    return {
        "id": experiment_id, "points": 2 * STEPS + 5, "sha256": hashlib.sha256(blob).hexdigest(), "events": 1,
    }


def assert_held_once(database, expected: dict) -> None:
    experiment = expected["id"]
    assert database.scalar(f"SELECT count(*) FROM public.boxcar_experiments WHERE id = '{experiment}'") == 1
    points = database.scalar(
        f"SELECT count(*) FROM public.boxcar_points WHERE parent_id = '{experiment}' AND key NOT LIKE 'system/%'")
    assert points == expected["points"]
    distinct = database.scalar(f"""
        SELECT count(*) FROM (SELECT DISTINCT host, key, step FROM public.boxcar_points
                              WHERE parent_id = '{experiment}' AND key NOT LIKE 'system/%') d""")
    assert distinct == expected["points"], "a point arrived twice"
    assert database.scalar(f"SELECT count(*) FROM public.boxcar_events WHERE parent_id = '{experiment}'") == expected["events"]
    assert database.sql(
        f"SELECT value::text FROM public.boxcar_metadata WHERE parent_id = '{experiment}' AND key = 'hyperparams'"
    ) == '{"lr": 0.0002, "layers": 3}'
    assert database.scalar(
        f"SELECT count(*) FROM boxcar.files WHERE parent_id = '{experiment}' AND blob = '{expected['sha256']}'") == 1


def blob_path(collector: Collector, sha256: str) -> Path:
    return collector.artifacts / "blobs" / sha256[:2] / sha256


def test_an_agent_forwards_what_it_logs_once_with_its_bytes(database, tmp_path):
    collector = Collector(tmp_path / "c", database)
    collector.start()
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    try:
        with running_agent(agent_dir, "--upstream", collector.target, "--sample-interval", "0.2",
                           "--label", "cluster=east", "--label", "rack=r7") as agent:
            expected = log_known_set(agent, tmp_path, "run-1")
            empty = tmp_path / "empty.txt"
            empty.write_bytes(b"")
            with Boxcar(agent.target) as mbox:
                run = mbox.experiment(expected["id"])
                run.upload_artifact([str(empty)])
                # Steps take the whole uint64 range: one block crossing 2^63.
                for index, step in enumerate((2**63 - 1, 2**63, 2**64 - 1)):
                    run.log_metrics({"edge": float(index)}, step=step)
                assert mbox.flush(timeout=30)
            wait_until_forwarded(agent)
            wait_until_forwarded(agent)
            status = upstreams(agent)
            assert [s.target for s in status] == [collector.target]
            assert status[0].connected and status[0].last_error == "" and status[0].quarantined == 0
        # The view decodes the agent's blocks exactly (steps as PostgreSQL's bigint: their bits).
        experiment = expected["id"]
        assert database.sql(
            f"SELECT string_agg(step || ':' || value, ',' ORDER BY time, step) FROM public.boxcar_points "
            f"WHERE parent_id = '{experiment}' AND key = 'unary/lr'") == "0:0.5,1:0.5,2:0.5,3:0.5,4:0.5"
        assert database.sql(
            f"SELECT string_agg(step::text || ':' || value, ',' ORDER BY value) FROM public.boxcar_points "
            f"WHERE parent_id = '{experiment}' AND key = 'edge'"
        ) == "9223372036854775807:0,-9223372036854775808:1,-1:2"
        assert abs(float(database.sql(
            f"SELECT sum(value) FROM public.boxcar_points WHERE parent_id = '{experiment}' AND key = 'loss'"))
            - sum(1.0 / (step + 1) for step in range(STEPS))) < 1e-9
        expected["points"] += 3
        assert_held_once(database, expected)
        digest = hashlib.sha256(blob_path(collector, expected["sha256"]).read_bytes()).hexdigest()
        assert digest == expected["sha256"]
        # An empty file's (no) bytes arrive too: its record is stored, not quarantined.
        nothing = hashlib.sha256(b"").hexdigest()
        assert database.scalar(f"SELECT count(*) FROM boxcar.files WHERE blob = '{nothing}' AND size = 0") == 1
        assert blob_path(collector, nothing).read_bytes() == b""
        labels = database.sql("SELECT labels->>'cluster' || ',' || (labels->>'rack') || ',' || host FROM boxcar.agents")
        assert labels == f"east,r7,{os.uname().nodename}"
        # Its records are of version 3 (blocks may be compressed), stored by the collector as version 1.
        assert database.scalar("SELECT record_version FROM boxcar.agents") == 4
        assert database.scalar("SELECT count(*) FROM boxcar.metric_blocks WHERE get_byte(data, 0) <> 1") == 0
        agent_db = sqlite3.connect(agent_dir / "boxcar.db")
        try:
            compressed = agent_db.execute("SELECT count(*) FROM metric_blocks WHERE substr(data, 1, 1) = x'03'").fetchone()[0]
        finally:
            agent_db.close()
        assert compressed > 0, "the agent compressed no block: the collector's conversion went untested"
        # The machine's series inside the trainer's window came along, labelled with the host.
        assert database.scalar(
            f"SELECT count(*) FROM public.boxcar_points WHERE parent_id = 'host' AND host = '{os.uname().nodename}'") > 0
    finally:
        collector.stop()


def agent_identity(directory: Path) -> str:
    with sqlite3.connect(directory / "boxcar.db") as local:
        return local.execute("SELECT agent_id FROM identities ORDER BY number DESC LIMIT 1").fetchone()[0]


def assert_agent_held_once(database, directory: Path, at_least: int = 100) -> None:
    """Every point and event the (stopped) agent holds up to its acknowledged seq is in
    PostgreSQL once: the same points. (The machine's ticks went as a block a point, and the
    agent may have compacted them since into a block a series: blocks are not counted.)"""
    with sqlite3.connect(directory / "boxcar.db") as local:
        acked = local.execute("SELECT value FROM meta WHERE key = 'forward_acked'").fetchone()[0]
        points = local.execute("SELECT coalesce(sum(count), 0) FROM metric_blocks WHERE seq <= ?", (acked,)).fetchone()[0]
        # A tick's points take the seqs seq … last_seq.
        points += local.execute(
            "SELECT coalesce(sum(min(last_seq, ?) - seq + 1), 0) FROM ticks WHERE seq <= ?", (acked, acked)).fetchone()[0]
        events = local.execute("SELECT count(*) FROM events WHERE seq <= ?", (acked,)).fetchone()[0]
    agent_id = agent_identity(directory)
    held = database.scalar(f"""
        SELECT coalesce(sum(count), 0) FROM boxcar.metric_blocks WHERE agent_id = '{agent_id}' AND seq <= {acked}""")
    assert held == points
    assert database.scalar(f"SELECT count(*) FROM boxcar.events WHERE agent_id = '{agent_id}'") == events
    assert points >= at_least, "too little was forwarded for the test to mean anything"


def test_nothing_is_lost_while_the_collector_is_away_nor_doubled_by_crashes(database, postgres_cluster, tmp_path):
    """Three agents forward their runs and every sample of the machine. The collector is down
    while they log, killed while a backlog drains, PostgreSQL restarts, an agent is SIGKILLed and
    restarted: at the end PostgreSQL holds every record of each agent exactly once."""
    collector = Collector(tmp_path / "c", database)
    agents_dir = [tmp_path / f"agent{i}" for i in range(3)]
    for directory in agents_dir:
        directory.mkdir()
    forwarding = ("--upstream", collector.target, "--upstream-host-series", "all", "--sample-interval", "0.2")
    expected = []
    with running_agent(agents_dir[0], *forwarding) as a0, running_agent(agents_dir[1], *forwarding) as a1, \
         running_agent(agents_dir[2], *forwarding) as a2:
        # Logged with no collector at all: held in the outbox, with a few seconds of samples.
        for index, agent in enumerate((a0, a1, a2)):
            expected.append(log_known_set(agent, tmp_path, f"away-{index}"))
        wait_for(lambda: all(upstreams(a)[0].records_behind > 3_000 for a in (a0, a1, a2)), 60, "a backlog")
        assert all(upstreams(a)[0].last_error for a in (a0, a1, a2))
        collector.start()
        # The collector dies while the backlog drains, and comes back.
        wait_for(lambda: database.scalar("SELECT count(*) FROM boxcar.metric_blocks") > 0, 60, "the first blocks")
        collector.kill()
        collector.start()
        # PostgreSQL restarts under the collector.
        wait_for(lambda: database.scalar("SELECT count(*) FROM boxcar.agents") == 3, 60, "all three agents")
        postgres_cluster.restart()
        # An agent is killed mid-stream, and restarted on its database.
        a1.kill()
        a1.start()
        for agent in (a0, a1, a2):
            # A batch caught by the restart waits at most its transaction's deadline (60 s) and a
            # backoff (at most 60 s) before it is sent again.
            wait_until_forwarded(agent, timeout=240)
            assert upstreams(agent)[0].quarantined == 0
    collector.stop()
    for each in expected:
        assert_held_once(database, each)
    for directory in agents_dir:
        assert_agent_held_once(database, directory)
    assert database.scalar("SELECT count(*) FROM boxcar.agents") == 3


def test_a_record_the_collector_refuses_is_quarantined_and_the_stream_goes_on(database, tmp_path):
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    with running_agent(agent_dir, "--sample-interval", "0") as agent:
        expected = log_known_set(agent, tmp_path, "poisoned")
    # One stored block made unreadable, as a disk error or a bug could leave it.
    with sqlite3.connect(agent_dir / "boxcar.db") as local:
        bad_seq = local.execute("SELECT min(seq) FROM metric_blocks").fetchone()[0]
        bad_count = local.execute("SELECT count FROM metric_blocks WHERE seq = ?", (bad_seq,)).fetchone()[0]
        local.execute("UPDATE metric_blocks SET data = x'01ff' WHERE seq = ?", (bad_seq,))
    collector = Collector(tmp_path / "c", database)
    collector.start()
    try:
        with running_agent(agent_dir, "--upstream", collector.target, "--sample-interval", "0") as agent:
            wait_until_forwarded(agent)
            status = upstreams(agent)[0]
            assert status.quarantined == 1
            assert "quarantine" in agent.output()
        with sqlite3.connect(agent_dir / "boxcar.db") as local:
            assert local.execute("SELECT seq, kind FROM forward_quarantine").fetchall() == [(bad_seq, "metric-block")]
        assert database.scalar(f"SELECT count(*) FROM boxcar.refused_records WHERE seq = {bad_seq}") == 1
        assert database.scalar(
            f"SELECT count(*) FROM public.boxcar_points WHERE parent_id = '{expected['id']}' AND key NOT LIKE 'system/%'"
        ) == expected["points"] - bad_count
    finally:
        collector.stop()


def forward_stream(target: str, messages, metadata=()):
    channel = grpc.insecure_channel(target)
    try:
        stub = collector_pb2_grpc.CollectorStub(channel)
        return list(stub.Forward(iter(messages), metadata=metadata, timeout=30))
    finally:
        channel.close()


def hello(agent_id: str, version: int = 1, first_seq: int = 0) -> collector_pb2.ForwardRequest:
    return collector_pb2.ForwardRequest(hello=collector_pb2.ForwardHello(
        agent_id=agent_id, record_version=version, host_name="fake", labels={"host": "fake"}, first_seq=first_seq))


def event_record(seq: int, name: str) -> collector_pb2.ForwardRecord:
    return collector_pb2.ForwardRecord(seq=seq, event=collector_pb2.EventRecord(
        parent_id="exp", name=name, source="test", wallclock_ns=1_700_000_000_000_000_000 + seq,
        metadata_json="{}", created_ns=1))


def test_bad_input_gets_a_clear_status_and_stores_nothing(database, tmp_path):
    collector = Collector(tmp_path / "c", database)
    collector.start()
    try:
        agent_id = str(uuid.uuid4())
        # A record version from the future.
        with pytest.raises(grpc.RpcError) as refused:
            forward_stream(collector.target, [hello(agent_id, version=99)])
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "record version 99" in refused.value.details()
        # No hello first, and an agent id that is not a UUID.
        for first in ([collector_pb2.ForwardRequest(batch=collector_pb2.ForwardBatch(batch_id=1))], [hello("node-1")]):
            with pytest.raises(grpc.RpcError) as refused:
                forward_stream(collector.target, first)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # A batch that leaves a gap after the cursor: refused, nothing of it stored.
        with pytest.raises(grpc.RpcError) as refused:
            forward_stream(collector.target, [hello(agent_id), collector_pb2.ForwardRequest(batch=collector_pb2.ForwardBatch(
                batch_id=1, after_seq=10, through_seq=11, records=[event_record(11, "late")]))])
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "through 0" in refused.value.details()
        assert database.scalar("SELECT count(*) FROM boxcar.events") == 0
        # Bytes that do not parse as a message at all.
        channel = grpc.insecure_channel(collector.target)
        raw = channel.stream_stream("/boxcar.v1.Collector/Forward", request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as refused:
            list(raw(iter([b"\xff\xff\xff\xff"]), timeout=10))
        channel.close()
        assert refused.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
        assert database.scalar("SELECT count(*) FROM boxcar.events") == 0
        # A good batch, then the same seqs again (a retry after a lost acknowledgement): at or below
        # the cursor, acknowledged without writing, even where the retry's rows would win an upsert.
        def batch(value: str, updated: int):
            return collector_pb2.ForwardRequest(batch=collector_pb2.ForwardBatch(
                batch_id=1, after_seq=0, through_seq=3, records=[
                    event_record(1, "a"), event_record(2, "b"),
                    collector_pb2.ForwardRecord(seq=3, metadata=collector_pb2.MetadataRecord(
                        parent_id="exp", key="k", value_json=value, updated_ns=updated))]))
        for value, updated in (("1", 10), ("2", 20)):
            answers = forward_stream(collector.target, [hello(agent_id), batch(value, updated)])
            assert answers[-1].ack.through_seq == 3
        assert database.scalar("SELECT count(*) FROM boxcar.events") == 2
        assert database.sql("SELECT value FROM boxcar.metadata WHERE parent_id = 'exp' AND key = 'k'") == "1"
        assert database.scalar(f"SELECT acked_seq FROM boxcar.agents WHERE agent_id = '{agent_id}'") == 3
        # JSON PostgreSQL's jsonb cannot hold is refused alone; the rest of its batch is stored.
        answers = forward_stream(collector.target, [hello(agent_id), collector_pb2.ForwardRequest(
            batch=collector_pb2.ForwardBatch(batch_id=2, after_seq=3, through_seq=5, records=[
                collector_pb2.ForwardRecord(seq=4, metadata=collector_pb2.MetadataRecord(
                    parent_id="exp", key="nul", value_json='"a\\u0000b"', updated_ns=1)),
                event_record(5, "c")]))])
        assert [r.seq for r in answers[-1].ack.refused] == [4]
        assert database.scalar("SELECT count(*) FROM boxcar.events") == 3
        assert database.scalar("SELECT count(*) FROM public.boxcar_metadata") == 1
    finally:
        collector.stop()


def test_a_wrong_token_is_refused_and_a_read_token_cannot_forward(database, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("node-1 agent s3cret-agent\nnode-2 agent s3cret-other\ngrafana read s3cret-read\n")
    tokens.chmod(0o600)
    collector = Collector(tmp_path / "c", database, "--token-file", str(tokens))
    collector.start()
    try:
        agent_id = str(uuid.uuid4())
        for token, code in ((None, grpc.StatusCode.UNAUTHENTICATED), ("wrong", grpc.StatusCode.UNAUTHENTICATED),
                            ("s3cret-read", grpc.StatusCode.PERMISSION_DENIED)):
            metadata = [("authorization", f"Bearer {token}")] if token else []
            with pytest.raises(grpc.RpcError) as refused:
                forward_stream(collector.target, [hello(agent_id)], metadata)
            assert refused.value.code() == code
        assert database.scalar("SELECT count(*) FROM boxcar.agents") == 0
        answers = forward_stream(collector.target, [hello(agent_id)], [("authorization", "Bearer s3cret-agent")])
        assert answers[0].welcome.cursor == 0
        # The agent is bound to the token it came with: another agent's token cannot write as it.
        with pytest.raises(grpc.RpcError) as refused:
            forward_stream(collector.target, [hello(agent_id), collector_pb2.ForwardRequest(batch=collector_pb2.ForwardBatch(
                batch_id=1, after_seq=0, through_seq=1, records=[event_record(1, "forged")]))],
                [("authorization", "Bearer s3cret-other")])
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "another token" in refused.value.details()
        assert database.scalar("SELECT count(*) FROM boxcar.events") == 0
        assert database.sql(f"SELECT token_name FROM public.boxcar_agents WHERE agent_id = '{agent_id}'") == "node-1"
        other = str(uuid.uuid4())
        assert forward_stream(collector.target, [hello(other)], [("authorization", "Bearer s3cret-other")])[0].welcome
        # An agent with the wrong token keeps its records and says why in its Health.
        token_file = tmp_path / "agent-token"
        token_file.write_text("wrong\n")
        token_file.chmod(0o600)
        agent_dir = tmp_path / "agent"
        agent_dir.mkdir()
        with running_agent(agent_dir, "--upstream", collector.target, "--upstream-token-file", str(token_file),
                           "--sample-interval", "0") as agent:
            log_known_set(agent, tmp_path, "unauthorised")
            wait_for(lambda: "unauthenticated" in upstreams(agent)[0].last_error.lower(), 30, "the refusal in Health")
            assert upstreams(agent)[0].records_behind > 0
        assert database.scalar("SELECT count(*) FROM boxcar.experiments") == 0
    finally:
        collector.stop()


def test_large_tables_distribute_by_agent_id(database, tmp_path):
    """Citus-ready: every primary key and unique index of a large table includes agent_id, and no
    foreign key joins two large tables on anything else."""
    collector = Collector(tmp_path / "c", database)
    collector.start()
    collector.stop()
    large = ("metric_blocks", "events", "files", "attachments", "skipped_ranges", "refused_records", "agents")
    rows = database.sql(f"""
        SELECT c.relname, i.indexrelid::regclass,
               bool_or(a.attname = 'agent_id')
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
        WHERE n.nspname = 'boxcar' AND (i.indisunique OR i.indisprimary)
          AND c.relname IN ({", ".join(f"'{t}'" for t in large)})
        GROUP BY c.relname, i.indexrelid
        """).splitlines()
    assert {row.split("|")[0] for row in rows} >= set(large), rows
    assert all(row.endswith("|t") for row in rows), rows
    assert database.scalar("""
        SELECT count(*) FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
        WHERE n.nspname = 'boxcar' AND k.contype = 'f'""") == 0
    # The views are in public, found without a search path.
    views = set(database.sql("SELECT table_name FROM information_schema.views WHERE table_schema = 'public'").split())
    assert {"boxcar_points", "boxcar_experiments", "boxcar_events", "boxcar_metadata"} <= views


def packed_block(seq: int, parent: str, key: str, step: int, wallclock: int, value: float) -> collector_pb2.ForwardRecord:
    """One point as the agent packs a metric block (MetricBlock.encodePacked, version 1)."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    def zigzag(n: int) -> int:
        return (n << 1) ^ (n >> 63)
    data = bytes([1, 0]) + varint(1) + varint(zigzag(step)) + varint(zigzag(wallclock)) + struct.pack("<d", value)
    return collector_pb2.ForwardRecord(seq=seq, metric_block=collector_pb2.MetricBlockRecord(
        parent_id=parent, key=key, count=1, step_min=step, step_max=step, wallclock_min=wallclock,
        wallclock_max=wallclock, data=data))


def test_machine_series_under_the_names_before_opentelemetrys_are_renamed(database, tmp_path):
    """A collector's keys from before the machine series took OpenTelemetry's names are renamed by
    its schema migration 3, and so are those an older agent (record version 3) still sends; a
    current agent's keys, and an experiment's own metrics, are stored as sent."""
    collector = Collector(tmp_path / "c", database)
    collector.start()  # migrates
    collector.stop()
    now = time.time_ns()
    held = 'system/system.disk.io{device="vda",direction="read"}'
    database.sql("INSERT INTO boxcar.metric_blocks (agent_id, seq, parent_id, key, count, step_min, step_max, "
                 f"wallclock_min, wallclock_max, data) VALUES ('{uuid.UUID(int=1)}', 1, 'host', '{held}', 1, 1, 1, "
                 f"{now}, {now}, '\\x01'::bytea)")
    database.sql("DELETE FROM boxcar.schema_migrations WHERE version = 3")
    collector = Collector(tmp_path / "c", database, name="renaming")
    collector.start()
    try:
        assert database.sql("SELECT key FROM boxcar.metric_blocks") == \
            'system/system.disk.io.rate{disk.io.direction="read",system.device="vda"}'
        assert database.scalar("SELECT max(version) FROM boxcar.schema_migrations") == 3
        older, current = str(uuid.uuid4()), str(uuid.uuid4())
        forward_stream(collector.target, [hello(older, version=3), collector_pb2.ForwardRequest(
            batch=collector_pb2.ForwardBatch(batch_id=1, after_seq=0, through_seq=3, records=[
                packed_block(1, "host", 'system/system.disk.io.cumulative{device="vda",direction="read"}', 1, now, 5e9),
                packed_block(2, "host", "system/system.cpu.context_switches", 1, now, 300),
                packed_block(3, "run", "loss", 1, now, 0.5)]))])
        forward_stream(collector.target, [hello(current, version=4), collector_pb2.ForwardRequest(
            batch=collector_pb2.ForwardBatch(batch_id=1, after_seq=0, through_seq=1, records=[
                packed_block(1, "host", "system/system.cpu.context_switches", 1, now, 7e6)]))])

        def keys(agent: str) -> list[str]:
            return database.sql(f"SELECT string_agg(key, ' ' ORDER BY seq) FROM boxcar.metric_blocks "
                                f"WHERE agent_id = '{agent}'").split(" ")
        assert keys(older) == ['system/system.disk.io{disk.io.direction="read",system.device="vda"}',
                               "system/system.cpu.context_switches.rate", "loss"]
        assert keys(current) == ["system/system.cpu.context_switches"]
    finally:
        collector.stop()
