import BoxcarModel

/// The database as an outbox for the forwarder (BoxcarForwarding): every row of every table in
/// `seq` order, as stored, from a cursor on. A row changed since it was last read carries a newer
/// seq (upserts and detaches take the next one), so reading past the cursor ships its new state.
///
/// The cursor itself ('forward_acked': the last seq the upstream acknowledged) lives in `meta`,
/// with 'forward_start' (the seq forwarding was first turned on at, for `--upstream-from now`).
extension Store {
    /// Which of the machine's own series (parent `host`) are forwarded.
    public enum HostSeriesForwarding: String, Sendable, CaseIterable {
        /// Those inside the window of a trainer attached to an experiment.
        case attached
        case all
        case none
    }

    /// One row of the outbox, as stored.
    public enum OutboxRow: Sendable, Equatable {
        case experiment(id: String, name: String, namespace: String, owner: String, framework: Int32, task: String,
                        externalID: String, createdNs: Int64, updatedNs: Int64)
        case metadata(parentID: String, key: String, valueJSON: String, updatedNs: Int64)
        case metricBlock(parentID: String, key: String, count: Int, stepMin: UInt64, stepMax: UInt64,
                         wallclockMin: Int64, wallclockMax: Int64, data: [UInt8])
        case event(parentID: String, name: String, source: String, wallclockNs: Int64, metadataJSON: String,
                   createdNs: Int64)
        case file(id: String, parentID: String, fileType: Int32, checksum: String, path: String, blob: String?,
                  size: Int64?, createdNs: Int64, updatedNs: Int64)
        case attachment(experimentID: String, pid: Int32, attachedNs: Int64, detachedNs: Int64?)
        case model(id: String, name: String, owner: String, namespace: String, description: String, task: String,
                   createdNs: Int64, updatedNs: Int64)
        case modelVersion(id: String, modelID: String, name: String, version: String, description: String,
                          framework: Int32, uniqueTagsJSON: String, createdNs: Int64, updatedNs: Int64)
        case checkpoint(id: String, experimentID: String, epoch: UInt64, metricsJSON: String, createdNs: Int64,
                        updatedNs: Int64)
        /// Records removed before the upstream acknowledged them (`--max-db-size` forced it).
        case skipped(fromSeq: Int64, records: Int64, reason: String)

        /// What it is, in a word (logs, the quarantine).
        public var kind: String {
            switch self {
            case .experiment: "experiment"
            case .metadata: "metadata"
            case .metricBlock: "metric-block"
            case .event: "event"
            case .file: "file"
            case .attachment: "attachment"
            case .model: "model"
            case .modelVersion: "model-version"
            case .checkpoint: "checkpoint"
            case .skipped: "skipped-range"
            }
        }

        /// About the bytes it takes on the wire (its text and bytes, and 64 for the rest), to keep
        /// a batch within a message whatever its rows hold.
        var weight: Int {
            func text(_ values: String...) -> Int { values.reduce(64) { $0 + $1.utf8.count } }
            switch self {
            case let .experiment(id, name, namespace, owner, _, task, externalID, _, _):
                return text(id, name, namespace, owner, task, externalID)
            case let .metadata(parentID, key, value, _): return text(parentID, key, value)
            case let .metricBlock(parentID, key, _, _, _, _, _, data): return text(parentID, key) + data.count
            case let .event(parentID, name, source, _, metadata, _): return text(parentID, name, source, metadata)
            case let .file(id, parentID, _, checksum, path, blob, _, _, _):
                return text(id, parentID, checksum, path, blob ?? "")
            case let .attachment(experimentID, _, _, _): return text(experimentID)
            case let .model(id, name, owner, namespace, description, task, _, _):
                return text(id, name, owner, namespace, description, task)
            case let .modelVersion(id, modelID, name, version, description, _, tags, _, _):
                return text(id, modelID, name, version, description, tags)
            case let .checkpoint(id, experimentID, _, metrics, _, _): return text(id, experimentID, metrics)
            case let .skipped(_, _, reason): return text(reason)
            }
        }
    }

    /// Which rows a reader of the outbox takes.
    public enum OutboxSelection: Sendable, Equatable {
        /// Every table, as the forwarder ships them, the machine's series as chosen.
        case everything(hostSeries: HostSeriesForwarding)
        /// The machine's series only (metric blocks under `system/`): the host's, and with
        /// `experiments` those stored under experiments too (their trainers' trees, cgroups and
        /// GPU memory). What remote write sends.
        case machineSeries(experiments: Bool)
    }

    /// A run of the outbox: every record after `after` up to `through`.
    public struct OutboxBatch: Sendable {
        public var after: Int64
        /// Every record the forwarder ships in (after, through] is in `rows`. When the outbox held
        /// fewer than the batch's limits, `through` is the last seq committed, past rows that are
        /// not forwarded (the machine's series outside every window, say).
        public var through: Int64
        public var rows: [(seq: Int64, row: OutboxRow)]
        /// The newest seq retention has removed: above the reader's cursor, it removed records
        /// the reader had not read.
        public var removedThrough: Int64 = 0
    }

    /// The rows after `after`, oldest first: at most `maxRows`, and stopping once about
    /// `maxBytes` are taken (one row always). One read transaction, so one snapshot.
    public func outbox(
        after: Int64, maxRows: Int, maxBytes: Int, hostSeries: HostSeriesForwarding
    ) async throws -> OutboxBatch {
        try await outbox(after: after, maxRows: maxRows, maxBytes: maxBytes, selection: .everything(hostSeries: hostSeries))
    }

    public func outbox(
        after: Int64, maxRows: Int, maxBytes: Int, selection: OutboxSelection
    ) async throws -> OutboxBatch {
        try await read { connection in
            let last = try Self.committedSequence(connection)
            let removed = try Self.metaValue("removed_through", connection) ?? 0
            // Each table's first `maxRows` after the cursor; their merge, cut at the limits, is
            // then exactly the outbox's first rows: a row of any table at or below the cut is
            // among its own table's first `maxRows`.
            var rows: [(seq: Int64, row: OutboxRow)] = []
            // A table read up to a limit (`maxRows` rows, or `maxBytes` of them: a backlog of
            // large blocks must not all be read into memory) may hold more past its last row
            // read; the batch stops there, and cannot claim to cover everything committed.
            var cutoff = Int64.max
            for query in try Self.outboxQueries(selection, connection: connection) {
                let statement = try connection.statement(query.sql + " LIMIT ?")
                defer { statement.reset() }
                statement.bind(1, after)
                statement.bind(2, Int64(maxRows))
                var scanned = 0
                var covered = after
                var taken = 0
                var bytes = 0
                var full = false
                reading: while try statement.step() {
                    scanned += 1
                    for row in try query.rows(statement) where row.seq > after {
                        rows.append(row)
                        taken += 1
                        bytes += row.row.weight
                        if taken == maxRows || bytes >= maxBytes {
                            full = true
                            break reading
                        }
                    }
                    covered = query.covers(statement)
                }
                if full, let last = rows.last {
                    cutoff = min(cutoff, last.seq)
                } else if scanned == maxRows {
                    // The head's ticks give a row a point, some of them not taken: the batch ends
                    // after the last tick read.
                    cutoff = min(cutoff, covered)
                }
            }
            let exhausted = cutoff == .max
            rows.removeAll { $0.seq > cutoff }
            rows.sort { $0.seq < $1.seq }
            var taken = 0
            var bytes = 0
            for (_, row) in rows {
                guard taken < maxRows, taken == 0 || bytes < maxBytes else { break }
                bytes += row.weight
                taken += 1
            }
            let complete = exhausted && taken == rows.count
            rows.removeSubrange(taken...)
            return OutboxBatch(
                after: after, through: complete ? max(last, after) : rows.last?.seq ?? cutoff, rows: rows, removedThrough: removed)
        }
    }

    private struct OutboxQuery {
        /// Selects seq first and takes the cursor as its one parameter, ordered by seq.
        let sql: String
        /// The rows one result holds (a tick of the head: one a point).
        let rows: (Statement) throws -> [(seq: Int64, row: OutboxRow)]
        /// The last seq one result holds.
        let covers: (Statement) -> Int64

        init(sql: String, row: @escaping (Statement) -> OutboxRow) {
            self.sql = sql
            self.rows = { [(seq: $0.int64(0), row: row($0))] }
            self.covers = { $0.int64(0) }
        }

        init(sql: String, rows: @escaping (Statement) throws -> [(seq: Int64, row: OutboxRow)], covers: @escaping (Statement) -> Int64) {
            self.sql = sql
            self.rows = rows
            self.covers = covers
        }
    }

    private static func outboxQueries(_ selection: OutboxSelection, connection: Connection) throws -> [OutboxQuery] {
        let blockFilter = switch selection {
        case .everything(.all): ""
        case .everything(.none): "AND s.parent_id <> 'host'"
        case .everything(.attached):
            """
            AND (s.parent_id <> 'host' OR EXISTS (
                SELECT 1 FROM attachments a
                WHERE a.attached_ns <= b.wallclock_max AND (a.detached_ns IS NULL OR a.detached_ns >= b.wallclock_min)))
            """
        // Keys from 'system/' up to 'system0' ('0' follows '/'): those that start with 'system/'.
        case .machineSeries(experiments: true): "AND s.key >= 'system/' AND s.key < 'system0'"
        case .machineSeries(experiments: false): "AND s.parent_id = 'host'"
        }
        // CROSS JOIN keeps the blocks, in seq order, the outer loop that LIMIT stops: given
        // `parent_id = 'host'`, SQLite would rather start from the series' index and sort every
        // block after the cursor (a backlog of 2,000,000 drained at 26,000 points/s that way).
        let blocks = OutboxQuery(sql: """
            SELECT b.seq, s.parent_id, s.key, b.count, b.step_min, b.step_max, b.wallclock_min, b.wallclock_max, b.data
            FROM metric_blocks b CROSS JOIN series s ON s.id = b.series_id
            WHERE b.seq > ? \(blockFilter) ORDER BY b.seq
            """) { s in
            .metricBlock(
                parentID: s.string(1), key: s.string(2), count: Int(s.int64(3)),
                stepMin: UInt64(bitPattern: s.int64(4)), stepMax: UInt64(bitPattern: s.int64(5)),
                wallclockMin: s.int64(6), wallclockMax: s.int64(7), data: s.withBlob(8) { Array($0) })
        }
        let ticks = try headQuery(selection, connection: connection)
        if case .machineSeries = selection { return [blocks, ticks] }
        return [
            ticks,
            OutboxQuery(sql: """
                SELECT seq, id, name, namespace, owner, framework, task, external_id, created_ns, updated_ns
                FROM experiments WHERE seq > ? ORDER BY seq
                """) { s in
                .experiment(
                    id: s.string(1), name: s.string(2), namespace: s.string(3), owner: s.string(4),
                    framework: Int32(truncatingIfNeeded: s.int64(5)), task: s.string(6), externalID: s.string(7),
                    createdNs: s.int64(8), updatedNs: s.int64(9))
            },
            OutboxQuery(sql: "SELECT seq, parent_id, key, value, updated_ns FROM metadata WHERE seq > ? ORDER BY seq") { s in
                .metadata(parentID: s.string(1), key: s.string(2), valueJSON: s.string(3), updatedNs: s.int64(4))
            },
            blocks,
            OutboxQuery(sql: """
                SELECT seq, parent_id, name, source, wallclock_ns, metadata, created_ns FROM events WHERE seq > ? ORDER BY seq
                """) { s in
                .event(
                    parentID: s.string(1), name: s.string(2), source: s.string(3), wallclockNs: s.int64(4),
                    metadataJSON: s.string(5), createdNs: s.int64(6))
            },
            OutboxQuery(sql: """
                SELECT seq, id, parent_id, file_type, checksum, path, blob, size, created_ns, updated_ns
                FROM files WHERE seq > ? ORDER BY seq
                """) { s in
                .file(
                    id: s.string(1), parentID: s.string(2), fileType: Int32(truncatingIfNeeded: s.int64(3)),
                    checksum: s.string(4), path: s.string(5), blob: s.optionalString(6), size: s.optionalInt64(7),
                    createdNs: s.int64(8), updatedNs: s.int64(9))
            },
            OutboxQuery(sql: """
                SELECT seq, experiment_id, pid, attached_ns, detached_ns FROM attachments WHERE seq > ? ORDER BY seq
                """) { s in
                .attachment(
                    experimentID: s.string(1), pid: Int32(truncatingIfNeeded: s.int64(2)), attachedNs: s.int64(3),
                    detachedNs: s.optionalInt64(4))
            },
            OutboxQuery(sql: """
                SELECT seq, id, name, owner, namespace, description, task, created_ns, updated_ns
                FROM models WHERE seq > ? ORDER BY seq
                """) { s in
                .model(
                    id: s.string(1), name: s.string(2), owner: s.string(3), namespace: s.string(4),
                    description: s.string(5), task: s.string(6), createdNs: s.int64(7), updatedNs: s.int64(8))
            },
            OutboxQuery(sql: """
                SELECT seq, id, model_id, name, version, description, framework, unique_tags, created_ns, updated_ns
                FROM model_versions WHERE seq > ? ORDER BY seq
                """) { s in
                .modelVersion(
                    id: s.string(1), modelID: s.string(2), name: s.string(3), version: s.string(4),
                    description: s.string(5), framework: Int32(truncatingIfNeeded: s.int64(6)),
                    uniqueTagsJSON: s.string(7), createdNs: s.int64(8), updatedNs: s.int64(9))
            },
            OutboxQuery(sql: """
                SELECT seq, id, experiment_id, epoch, metrics, created_ns, updated_ns FROM checkpoints WHERE seq > ? ORDER BY seq
                """) { s in
                .checkpoint(
                    id: s.string(1), experimentID: s.string(2), epoch: UInt64(bitPattern: s.int64(3)),
                    metricsJSON: s.string(4), createdNs: s.int64(5), updatedNs: s.int64(6))
            },
            OutboxQuery(sql: """
                SELECT through_seq, from_seq, records, reason FROM forward_skips WHERE through_seq > ? ORDER BY through_seq
                """) { s in
                .skipped(fromSeq: s.int64(1), records: s.int64(2), reason: s.string(3))
            },
        ]
    }

    // MARK: The forwarder's state

    /// Where forwarding stands, as kept in the database.
    public struct ForwardState: Sendable, Equatable {
        /// The last seq the upstream acknowledged (0: none).
        public var acknowledged: Int64
        /// The seq forwarding starts after (`--upstream-from now`: the last one when forwarding was
        /// first turned on; else 0). Never before the current identity's first record.
        public var start: Int64
        public var quarantined: Int64
        public var skippedRecords: Int64
    }

    /// Reads the forwarder's state, first recording where forwarding starts if it never ran:
    /// `fromNow` starts it after the last record held now, else at the beginning.
    public func forwardState(startingFromNow fromNow: Bool) async throws -> ForwardState {
        try await write { context in
            let connection = context.connection
            if try Self.metaValue("forward_start", connection) == nil {
                // What comes before the start counts as acknowledged: retention need not keep it.
                try Self.setMeta("forward_start", fromNow ? context.sequence : 0, connection)
                try Self.setMeta("forward_acked", fromNow ? context.sequence : 0, connection)
            }
            let identityStart = try Self.currentIdentity(connection)?.firstSequence ?? 0
            return ForwardState(
                acknowledged: try Self.metaValue("forward_acked", connection) ?? 0,
                start: max(try Self.metaValue("forward_start", connection) ?? 0, identityStart),
                quarantined: try Self.count("SELECT count(*) FROM forward_quarantine", connection),
                skippedRecords: try Self.count("SELECT coalesce(sum(records), 0) FROM forward_skips", connection))
        }
    }

    /// The forwarder's state as the database holds it, read only (`boxcar doctor` without a
    /// running agent); nil when forwarding never ran on it.
    public func forwardProgress() async throws -> (state: ForwardState, lastSequence: Int64)? {
        try await read { connection in
            guard let acknowledged = try Self.metaValue("forward_acked", connection) else { return nil }
            let state = ForwardState(
                acknowledged: acknowledged, start: try Self.metaValue("forward_start", connection) ?? 0,
                quarantined: try Self.count("SELECT count(*) FROM forward_quarantine", connection),
                skippedRecords: try Self.count("SELECT coalesce(sum(records), 0) FROM forward_skips", connection))
            return (state, try Self.committedSequence(connection))
        }
    }

    /// The upstream holds less than it acknowledged (its PostgreSQL was restored from a backup):
    /// what retention removed after `cursor` cannot be sent again, so a skipped range stands in
    /// for it, shipped in order with the rest. Returns whether there was such a range.
    public func recordLostRange(after cursor: Int64) async throws -> Bool {
        try await write { context in
            let connection = context.connection
            guard let removed = try Self.metaValue("removed_through", connection), removed > cursor else { return false }
            let skip = try connection.statement("""
                INSERT INTO forward_skips (through_seq, from_seq, records, reason) VALUES (?, ?, 0, ?)
                ON CONFLICT (through_seq) DO NOTHING
                """)
            skip.bind([removed, cursor + 1, "removed by retention after the upstream acknowledged them; the upstream has lost them since"])
            try skip.run()
            return true
        }
    }

    /// Makes the next record's seq come after `seq`: the upstream holds records up to it that this
    /// database lost (its last commits, under `--durability normal`, in a power loss).
    public func advanceSequence(past seq: Int64) async throws {
        try await write { context in context.advanceSequence(past: seq) }
    }

    /// Records what the upstream acknowledged, and sets aside the records it refused.
    public func acknowledgeForwarded(through: Int64, refused: [(seq: Int64, kind: String, reason: String)]) async throws {
        try await write { context in
            let connection = context.connection
            try Self.setMeta("forward_acked", through, connection)
            guard !refused.isEmpty else { return }
            let insert = try connection.statement("""
                INSERT OR REPLACE INTO forward_quarantine (seq, kind, reason, quarantined_ns) VALUES (?, ?, ?, ?)
                """)
            let now = WallClock.now()
            for record in refused {
                insert.bind([record.seq, record.kind, record.reason, now])
                try insert.run()
            }
        }
    }

    // MARK: Other readers' cursors

    /// The cursor of another reader of the outbox (each remote-write URL has one): the last seq
    /// it has dealt with. A new cursor starts after the last record committed now: a reader
    /// added to an old database starts with what comes next, not with its history.
    /// A cursor still kept under `formerly` is moved to `name`.
    public func cursor(_ name: String, formerly: String? = nil) async throws -> Int64 {
        try await write { context in
            let key = "cursor:" + name
            var found = try Self.metaValue(key, context.connection)
            if let formerly, formerly != name, let value = try Self.metaValue("cursor:" + formerly, context.connection) {
                if found == nil {
                    try Self.setMeta(key, value, context.connection)
                    found = value
                }
                let remove = try context.connection.statement("DELETE FROM meta WHERE key = ?")
                remove.bind(1, "cursor:" + formerly)
                try remove.run()
            }
            if let found { return found }
            try Self.setMeta(key, context.sequence, context.connection)
            return context.sequence
        }
    }

    /// A random number naming this database, made on first asking: the artifacts directory
    /// records it as its owner, so that one agent never sweeps another's blobs.
    public func databaseID() async throws -> Int64 {
        try await write { context in
            if let value = try Self.metaValue("database_id", context.connection) { return value }
            let made = Int64.random(in: 1...Int64.max)
            try Self.setMeta("database_id", made, context.connection)
            return made
        }
    }

    public func setCursor(_ name: String, to seq: Int64) async throws {
        try await write { context in try Self.setMeta("cursor:" + name, seq, context.connection) }
    }

    /// The head's ticks, a point of each series a row at its own seq (the tick's first, and on).
    private static func headQuery(_ selection: OutboxSelection, connection: Connection) throws -> OutboxQuery {
        let filter = switch selection {
        case .everything(.all), .machineSeries(experiments: true): ""
        case .everything(.none): "AND ss.parent_id <> 'host'"
        case .everything(.attached):
            """
            AND (ss.parent_id <> 'host' OR EXISTS (
                SELECT 1 FROM attachments a
                WHERE a.attached_ns <= t.wallclock AND (a.detached_ns IS NULL OR a.detached_ns >= t.wallclock)))
            """
        case .machineSeries(experiments: false): "AND ss.parent_id = 'host'"
        }
        let systemOnly = selection == .machineSeries(experiments: true)
        // Each set's members as (parent, key), read once per batch.
        let setMembers = try connection.statement("SELECT parent_id, members FROM series_sets WHERE id = ?")
        let seriesKey = try connection.statement("SELECT key FROM series WHERE id = ?")
        let names = NameCache()
        func members(_ setID: Int64) throws -> (parent: String, keys: [String]) {
            if let known = names.sets[setID] { return known }
            setMembers.bind(1, setID)
            defer { setMembers.reset() }
            guard try setMembers.step() else { throw CorruptHead() }
            let ids = try setMembers.withBlob(1) { try SeriesSet.decode($0) }
            let keys = try ids.map { id in
                seriesKey.bind(1, id)
                defer { seriesKey.reset() }
                guard try seriesKey.step() else { throw CorruptHead() }
                return seriesKey.string(0)
            }
            let named = (setMembers.string(0), keys)
            names.sets[setID] = named
            return named
        }
        // From the tick holding the cursor (or the first after it) on.
        return OutboxQuery(sql: """
            SELECT t.seq, t.last_seq, t.set_id, t.step, t.wallclock, t.data, t.packing FROM ticks t CROSS JOIN series_sets ss ON ss.id = t.set_id
            WHERE t.seq >= coalesce((SELECT max(seq) FROM ticks WHERE seq <= ?1), 0) AND t.last_seq > ?1 \(filter) ORDER BY t.seq
            """, rows: { s in
            let (parent, keys) = try members(s.int64(2))
            let (seq, step, wallclock) = (s.int64(0), UInt64(bitPattern: s.int64(3)), s.int64(4))
            let values = try s.withBlob(5) { try TickValues.decode($0, packing: s.int64(6), count: keys.count) }
            return keys.enumerated().compactMap { index, key in
                if systemOnly && !key.hasPrefix("system/") { return nil }
                var point = MetricColumns()
                point.append(step: step, wallclock: wallclock, value: values[index])
                return (seq: seq + Int64(index), row: .metricBlock(
                    parentID: parent, key: key, count: 1, stepMin: step, stepMax: step, wallclockMin: wallclock,
                    wallclockMax: wallclock, data: MetricBlock.encodePacked(point)))
            }
        }, covers: { $0.int64(1) })
    }

    private final class NameCache {
        var sets: [Int64: (parent: String, keys: [String])] = [:]
    }

    static func metaValue(_ key: String, _ connection: Connection) throws -> Int64? {
        let statement = try connection.statement("SELECT value FROM meta WHERE key = ?")
        defer { statement.reset() }
        statement.bind(1, key)
        return try statement.step() ? statement.int64(0) : nil
    }

    static func setMeta(_ key: String, _ value: Int64, _ connection: Connection) throws {
        let statement = try connection.statement("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)")
        statement.bind([key, value])
        try statement.run()
    }

    private static func count(_ sql: String, _ connection: Connection) throws -> Int64 {
        let statement = try connection.statement(sql)
        defer { statement.reset() }
        return try statement.step() ? statement.int64(0) : 0
    }
}
