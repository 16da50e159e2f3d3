import BoxcarAPI
import BoxcarModel
import BoxcarStorage
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Writes what agents forward into PostgreSQL, exactly once in effect: each agent's cursor (the
/// last seq held here) is locked and moved in the same transaction as the rows it covers, so a
/// batch retried after any crash is recognised (at or below the cursor: acknowledged, nothing
/// written), and collectors sharing one PostgreSQL take turns on an agent.
struct BatchWriter: Sendable {
    let client: PostgresClient
    let artifacts: ArtifactStore
    let logger: Logger

    /// A batch that does not follow what the collector holds of the agent.
    struct Gap: Error, CustomStringConvertible {
        let after: Int64
        let cursor: Int64
        var description: String {
            "the batch follows seq \(after) but the collector holds this agent's records through \(cursor): records between would be missing; reconnect to send from \(cursor)"
        }
    }

    /// An agent's stream carries another token than the one it first forwarded with.
    struct TokenMismatch: Error, CustomStringConvertible {
        let agentID: UUID
        let token: String
        var description: String {
            "agent \(agentID.uuidString.lowercased()) first forwarded with another token, and token \(token) may not forward for it: a token forwards only for the agents that first came with it (to move the agent to \(token): UPDATE boxcar.agents SET token_name = '\(token)' WHERE agent_id = '\(agentID.uuidString.lowercased())')"
        }
    }

    /// Registers the agent (or updates its labels) and returns its cursor: `first_seq` for one
    /// never seen. An agent first seen with a named token is bound to it: a leaked token of
    /// another agent cannot move its cursor or write under its id (a stream without a token, on
    /// the unix socket or loopback without a token file, is not checked).
    func welcome(agentID: UUID, hello: Boxcar_V1_ForwardHello, token: String?) async throws -> Int64 {
        let labels = String(decoding: try JSONEncoder().encode(hello.labels), as: UTF8.self)
        let host = hello.labels["host"] ?? hello.hostName
        let first = Int64(clamping: hello.firstSeq)
        let (client, logger) = (self.client, self.logger)
        return try await withDeadline(.seconds(60)) {
            let rows = try await client.query("""
                INSERT INTO boxcar.agents (agent_id, host, machine_id, labels, record_version, agent_version, first_seq, acked_seq,
                                           token_name)
                VALUES (\(agentID), \(host), \(hello.machineID), \(labels)::jsonb, \(Int32(hello.recordVersion)),
                        \(hello.agentVersion), \(first), \(first), \(token))
                ON CONFLICT (agent_id) DO UPDATE SET
                    host = excluded.host, machine_id = excluded.machine_id, labels = excluded.labels,
                    record_version = excluded.record_version, agent_version = excluded.agent_version, last_seen = now(),
                    token_name = coalesce(agents.token_name, excluded.token_name)
                WHERE agents.token_name IS NULL OR excluded.token_name IS NULL OR agents.token_name = excluded.token_name
                RETURNING acked_seq
                """, logger: logger)
            for try await cursor in rows.decode(Int64.self) { return cursor }
            // The row exists (the insert conflicted) and is bound to another token.
            throw TokenMismatch(agentID: agentID, token: token ?? "")
        }
    }

    /// Writes the records of `batch` past the agent's cursor and moves the cursor to its end, in
    /// one transaction; returns the records refused as malformed (not stored).
    /// `recordVersion`: the hello's; an agent older than version 4 writes its machine series under
    /// the names before OpenTelemetry's (`SeriesRenames`), renamed here as the migration renamed
    /// what it forwarded before.
    func write(agentID: UUID, recordVersion: UInt32, batch: Boxcar_V1_ForwardBatch) async throws -> [Boxcar_V1_RefusedRecord] {
        let after = Int64(clamping: batch.afterSeq)
        let through = Int64(clamping: batch.throughSeq)
        guard through >= after else {
            throw BatchError("the batch ends (seq \(through)) before it starts (seq \(after))")
        }
        let artifacts = self.artifacts
        return try await Transaction.run(client, logger: logger) { transaction in
            var cursor: Int64?
            for try await value in try await transaction.query(
                "SELECT acked_seq FROM boxcar.agents WHERE agent_id = \(agentID) FOR UPDATE"
            ).decode(Int64.self) {
                cursor = value
            }
            guard let cursor else { throw BatchError("agent \(agentID) is not known here: a stream starts with its hello") }
            if through <= cursor { return [] }
            if after > cursor { throw Gap(after: after, cursor: cursor) }

            var rows = Rows(agentID: agentID, renamesMachineSeries: recordVersion < 4)
            var refused: [Boxcar_V1_RefusedRecord] = []
            for record in batch.records where Int64(clamping: record.seq) > cursor && Int64(clamping: record.seq) <= through {
                do {
                    try rows.add(record, artifacts: artifacts)
                } catch {
                    refused.append(.with {
                        $0.seq = record.seq
                        $0.reason = "\(error)"
                    })
                }
            }
            try await rows.insert(transaction)
            for record in refused {
                try await transaction.query("""
                    INSERT INTO boxcar.refused_records (agent_id, seq, reason) VALUES (\(agentID), \(Int64(record.seq)), \(record.reason))
                    ON CONFLICT DO NOTHING
                    """)
            }
            try await transaction.query("""
                UPDATE boxcar.agents SET acked_seq = \(through), last_seen = now(),
                    skipped_ranges = skipped_ranges + \(rows.skippedRanges), skipped_records = skipped_records + \(rows.skippedRecords),
                    refused_records = refused_records + \(Int64(refused.count))
                WHERE agent_id = \(agentID)
                """)
            return refused
        }
    }
}

struct BatchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A batch's records as columns, one INSERT … SELECT FROM unnest(…) per table: a statement per
/// table per batch rather than per row, every value sent as a binary array parameter.
private struct Rows {
    let agentID: UUID
    var skippedRanges: Int64 = 0
    var skippedRecords: Int64 = 0

    var experiments = Columns(9)
    var metadata = Columns(4)
    var blocks = Columns(9)
    var events = Columns(7)
    var files = Columns(10)
    var attachments = Columns(4)
    var models = Columns(8)
    var versions = Columns(9)
    var checkpoints = Columns(6)
    var skips = Columns(4)

    /// An older agent's machine series get their current names.
    let renamesMachineSeries: Bool
    var renamed: [String: String] = [:]

    init(agentID: UUID, renamesMachineSeries: Bool) {
        self.agentID = agentID
        self.renamesMachineSeries = renamesMachineSeries
    }

    /// Checks one record and adds it to its table's columns; throws why it is refused.
    mutating func add(_ record: Boxcar_V1_ForwardRecord, artifacts: ArtifactStore) throws {
        let seq = Int64(clamping: record.seq)
        switch record.kind {
        case .experiment(let e):
            try Check.text(e.id, "id", e.name, e.namespace, e.owner, e.task, e.externalID)
            experiments.add([.text(e.id), .text(e.name), .text(e.namespace), .text(e.owner), .int32(e.framework),
                             .text(e.task), .text(e.externalID), .int64(e.createdNs), .int64(e.updatedNs)])
        case .metadata(let m):
            try Check.text(m.parentID, "parent_id", m.key, m.valueJson)
            try Check.text(m.key, "key")
            try Check.json(m.valueJson)
            metadata.add([.text(m.parentID), .text(m.key), .text(m.valueJson), .int64(m.updatedNs)])
        case .metricBlock(let b):
            try Check.text(b.parentID, "parent_id", b.key)
            try Check.text(b.key, "key")
            var columns = MetricColumns()
            try b.data.withUnsafeBytes { try MetricBlock.decode($0, into: &columns) }
            guard columns.count == Int(b.count), columns.count > 0 else {
                throw BatchError("the metric block holds \(columns.count) points, not the \(b.count) it claims")
            }
            // Stored as version 1, which the SQL views decode (`boxcar.decode_block`).
            let data = b.data.first == MetricBlock.version ? ByteBuffer(bytes: b.data) : ByteBuffer(bytes: MetricBlock.encodePacked(columns))
            var key = b.key
            if renamesMachineSeries, key.hasPrefix("system/") {
                if let known = renamed[key] { key = known } else {
                    let current = SeriesRenames.current(key) ?? key
                    renamed[key] = current
                    key = current
                }
            }
            blocks.add([.int64(seq), .text(b.parentID), .text(key), .int32(Int32(b.count)),
                        .int64(Int64(bitPattern: b.stepMin)), .int64(Int64(bitPattern: b.stepMax)),
                        .int64(b.wallclockMin), .int64(b.wallclockMax), .bytes(data)])
        case .event(let e):
            try Check.text(e.parentID, "parent_id", e.name, e.source, e.metadataJson)
            try Check.json(e.metadataJson)
            events.add([.int64(seq), .text(e.parentID), .text(e.name), .text(e.source), .int64(e.wallclockNs),
                        .text(e.metadataJson), .int64(e.createdNs)])
        case .file(let f):
            try Check.text(f.id, "id", f.parentID, f.checksum, f.path, f.blob)
            if !f.blob.isEmpty {
                try Check.blob(f.blob)
                guard FileManager.default.fileExists(atPath: artifacts.blobPath(f.blob)) else {
                    throw BatchError("the bytes of file \(f.id) (blob \(f.blob)) did not arrive before it")
                }
            }
            files.add([.text(f.id), .int64(seq), .text(f.parentID), .int32(f.fileType), .text(f.checksum),
                       .text(f.path), .text(f.blob), .int64(f.blob.isEmpty ? -1 : f.size), .int64(f.createdNs),
                       .int64(f.updatedNs)])
        case .attachment(let a):
            try Check.text(a.experimentID, "experiment_id")
            attachments.add([.text(a.experimentID), .int32(a.pid), .int64(a.attachedNs), .int64(a.detachedNs)])
        case .model(let m):
            try Check.text(m.id, "id", m.name, m.owner, m.namespace, m.description_p, m.task)
            models.add([.text(m.id), .text(m.name), .text(m.owner), .text(m.namespace), .text(m.description_p),
                        .text(m.task), .int64(m.createdNs), .int64(m.updatedNs)])
        case .modelVersion(let v):
            try Check.text(v.id, "id", v.modelID, v.name, v.version, v.description_p, v.uniqueTagsJson)
            try Check.json(v.uniqueTagsJson)
            versions.add([.text(v.id), .text(v.modelID), .text(v.name), .text(v.version), .text(v.description_p),
                          .int32(v.framework), .text(v.uniqueTagsJson), .int64(v.createdNs), .int64(v.updatedNs)])
        case .checkpoint(let c):
            try Check.text(c.id, "id", c.experimentID, c.metricsJson)
            try Check.json(c.metricsJson)
            checkpoints.add([.text(c.id), .text(c.experimentID), .int64(Int64(bitPattern: c.epoch)),
                             .text(c.metricsJson), .int64(c.createdNs), .int64(c.updatedNs)])
        case .skipped(let s):
            try Check.text(s.reason, "reason")
            skips.add([.int64(Int64(clamping: s.fromSeq)), .int64(Int64(clamping: s.throughSeq)),
                       .int64(Int64(clamping: s.records)), .text(s.reason)])
            skippedRanges += 1
            skippedRecords += Int64(clamping: s.records)
        case nil:
            throw BatchError("a record of a kind this collector does not know (from a newer agent?)")
        }
    }

    func insert(_ transaction: Transaction) async throws {
        let agent = agentID
        if !experiments.isEmpty {
            let c = experiments
            try await transaction.query("""
                INSERT INTO boxcar.experiments (id, name, namespace, owner, framework, task, external_id, created_ns, updated_ns)
                SELECT * FROM unnest(\(c.texts(0)), \(c.texts(1)), \(c.texts(2)), \(c.texts(3)), \(c.ints32(4)),
                                     \(c.texts(5)), \(c.texts(6)), \(c.ints64(7)), \(c.ints64(8))) AS e(id) ORDER BY id
                ON CONFLICT (id) DO UPDATE SET
                    name = excluded.name, namespace = excluded.namespace, owner = excluded.owner,
                    framework = excluded.framework, task = excluded.task, external_id = excluded.external_id,
                    created_ns = least(experiments.created_ns, excluded.created_ns),
                    updated_ns = greatest(experiments.updated_ns, excluded.updated_ns)
                WHERE excluded.updated_ns >= experiments.updated_ns
                """)
        }
        if !metadata.isEmpty {
            let c = metadata
            try await transaction.query("""
                INSERT INTO boxcar.metadata (parent_id, key, value, updated_ns)
                SELECT * FROM unnest(\(c.texts(0)), \(c.texts(1)), \(c.texts(2)), \(c.ints64(3))) AS m(parent_id, key)
                ORDER BY parent_id, key
                ON CONFLICT (parent_id, key) DO UPDATE SET value = excluded.value, updated_ns = excluded.updated_ns
                WHERE excluded.updated_ns >= metadata.updated_ns
                """)
        }
        if !blocks.isEmpty {
            let c = blocks
            try await transaction.query("""
                INSERT INTO boxcar.metric_blocks (agent_id, seq, parent_id, key, count, step_min, step_max,
                                                  wallclock_min, wallclock_max, data)
                SELECT \(agent), * FROM unnest(\(c.ints64(0)), \(c.texts(1)), \(c.texts(2)), \(c.ints32(3)),
                                              \(c.ints64(4)), \(c.ints64(5)), \(c.ints64(6)), \(c.ints64(7)), \(c.bytes(8)))
                ON CONFLICT DO NOTHING
                """)
        }
        if !events.isEmpty {
            let c = events
            try await transaction.query("""
                INSERT INTO boxcar.events (agent_id, seq, parent_id, name, source, wallclock_ns, metadata, created_ns)
                SELECT \(agent), * FROM unnest(\(c.ints64(0)), \(c.texts(1)), \(c.texts(2)), \(c.texts(3)),
                                              \(c.ints64(4)), \(c.texts(5)), \(c.ints64(6)))
                ON CONFLICT DO NOTHING
                """)
        }
        if !files.isEmpty {
            let c = files
            try await transaction.query("""
                INSERT INTO boxcar.files (agent_id, id, seq, parent_id, file_type, checksum, path, blob, size,
                                          created_ns, updated_ns)
                SELECT \(agent), id, seq, parent_id, file_type, checksum, path, nullif(blob, ''), nullif(size, -1),
                       created_ns, updated_ns
                FROM unnest(\(c.texts(0)), \(c.ints64(1)), \(c.texts(2)), \(c.ints32(3)), \(c.texts(4)), \(c.texts(5)),
                            \(c.texts(6)), \(c.ints64(7)), \(c.ints64(8)), \(c.ints64(9)))
                     AS f(id, seq, parent_id, file_type, checksum, path, blob, size, created_ns, updated_ns)
                ON CONFLICT (agent_id, id) DO UPDATE SET seq = excluded.seq, updated_ns = excluded.updated_ns
                """)
        }
        if !attachments.isEmpty {
            let c = attachments
            try await transaction.query("""
                INSERT INTO boxcar.attachments (agent_id, experiment_id, pid, attached_ns, detached_ns)
                SELECT \(agent), experiment_id, pid, attached_ns, nullif(detached_ns, 0)
                FROM unnest(\(c.texts(0)), \(c.ints32(1)), \(c.ints64(2)), \(c.ints64(3)))
                     AS a(experiment_id, pid, attached_ns, detached_ns)
                ON CONFLICT (agent_id, experiment_id, pid, attached_ns) DO UPDATE SET detached_ns = excluded.detached_ns
                """)
        }
        if !models.isEmpty {
            let c = models
            try await transaction.query("""
                INSERT INTO boxcar.models (id, name, owner, namespace, description, task, created_ns, updated_ns)
                SELECT * FROM unnest(\(c.texts(0)), \(c.texts(1)), \(c.texts(2)), \(c.texts(3)), \(c.texts(4)),
                                     \(c.texts(5)), \(c.ints64(6)), \(c.ints64(7))) AS m(id) ORDER BY id
                ON CONFLICT (id) DO UPDATE SET description = excluded.description, task = excluded.task,
                    updated_ns = excluded.updated_ns
                WHERE excluded.updated_ns >= models.updated_ns
                """)
        }
        if !versions.isEmpty {
            let c = versions
            try await transaction.query("""
                INSERT INTO boxcar.model_versions (id, model_id, name, version, description, framework, unique_tags,
                                                   created_ns, updated_ns)
                SELECT * FROM unnest(\(c.texts(0)), \(c.texts(1)), \(c.texts(2)), \(c.texts(3)), \(c.texts(4)),
                                     \(c.ints32(5)), \(c.texts(6)), \(c.ints64(7)), \(c.ints64(8))) AS v(id) ORDER BY id
                ON CONFLICT (id) DO UPDATE SET description = excluded.description, framework = excluded.framework,
                    unique_tags = excluded.unique_tags, updated_ns = excluded.updated_ns
                WHERE excluded.updated_ns >= model_versions.updated_ns
                """)
        }
        if !checkpoints.isEmpty {
            let c = checkpoints
            try await transaction.query("""
                INSERT INTO boxcar.checkpoints (id, experiment_id, epoch, metrics, created_ns, updated_ns)
                SELECT * FROM unnest(\(c.texts(0)), \(c.texts(1)), \(c.ints64(2)), \(c.texts(3)), \(c.ints64(4)),
                                     \(c.ints64(5))) AS k(id) ORDER BY id
                ON CONFLICT (id) DO UPDATE SET metrics = excluded.metrics, updated_ns = excluded.updated_ns
                WHERE excluded.updated_ns >= checkpoints.updated_ns
                """)
        }
        if !skips.isEmpty {
            let c = skips
            try await transaction.query("""
                INSERT INTO boxcar.skipped_ranges (agent_id, from_seq, through_seq, records, reason)
                SELECT \(agent), * FROM unnest(\(c.ints64(0)), \(c.ints64(1)), \(c.ints64(2)), \(c.texts(3)))
                ON CONFLICT DO NOTHING
                """)
        }
    }
}

/// One table's rows as columns of one type each.
private struct Columns {
    enum Value {
        case text(String)
        case int64(Int64)
        case int32(Int32)
        case bytes(ByteBuffer)
    }

    private var texts: [Int: [String]] = [:]
    private var int64s: [Int: [Int64]] = [:]
    private var int32s: [Int: [Int32]] = [:]
    private var buffers: [Int: [ByteBuffer]] = [:]
    private(set) var count = 0
    let width: Int

    init(_ width: Int) { self.width = width }

    var isEmpty: Bool { count == 0 }

    mutating func add(_ row: [Value]) {
        precondition(row.count <= width)
        for (index, value) in row.enumerated() {
            switch value {
            case .text(let v): texts[index, default: []].append(v)
            case .int64(let v): int64s[index, default: []].append(v)
            case .int32(let v): int32s[index, default: []].append(v)
            case .bytes(let v): buffers[index, default: []].append(v)
            }
        }
        count += 1
    }

    func texts(_ index: Int) -> [String] { texts[index] ?? [] }
    func ints64(_ index: Int) -> [Int64] { int64s[index] ?? [] }
    func ints32(_ index: Int) -> [Int32] { int32s[index] ?? [] }
    func bytes(_ index: Int) -> [ByteBuffer] { buffers[index] ?? [] }
}

/// What makes a record malformed: text PostgreSQL cannot hold (a NUL byte), an empty key, JSON
/// that does not parse.
private enum Check {
    static func text(_ required: String, _ name: String, _ others: String...) throws {
        guard !required.isEmpty else { throw BatchError("the record has an empty \(name)") }
        for value in [required] + others where value.utf8.contains(0) {
            throw BatchError("the record holds a NUL character, which PostgreSQL text cannot")
        }
    }

    static func json(_ text: String) throws {
        guard (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil else {
            throw BatchError("the record's JSON does not parse")
        }
        // PostgreSQL's jsonb cannot hold it, and one such row would break every query of the views.
        guard !text.contains("\\u0000") else {
            throw BatchError("the record's JSON holds a \\u0000 character, which PostgreSQL cannot")
        }
    }

    /// A blob's name: the SHA-256 of its bytes, 64 lowercase hex digits (it names a file).
    static func blob(_ blob: String) throws {
        guard blob.utf8.count == 64, blob.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw BatchError("a file's blob must be a lowercase SHA-256, not \(blob.prefix(80))")
        }
    }
}
