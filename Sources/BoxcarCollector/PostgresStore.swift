import BoxcarModel
import BoxcarStorage
import Foundation
import GRPCCore
import Logging
import NIOCore
import PostgresNIO

/// The collector's PostgreSQL read as a `RecordStore`, so that the agent's own services
/// (`modelbox.ModelStore`, `boxcar.v1.Agent`) answer every read across the whole fleet: one
/// experiment logged from several machines is one experiment with every machine's points, and
/// each machine's own series come labelled with its host (`system/cpu.utilization{cpu="0",
/// host="node-3"}`).
///
/// It writes nothing: records reach the collector only through forwarding, which keeps them
/// exactly once (BatchWriter). A write through the read API is refused with FAILED_PRECONDITION.
struct PostgresStore: RecordStore {
    let client: PostgresClient
    let location: String
    let logger: Logger

    /// A read PostgreSQL never answers (the hang Transaction describes) is given up after this.
    static let readDeadline: Duration = .seconds(60)

    /// The collector has no sequence of its own: each agent's cursor is in `boxcar_agents`.
    var lastSequence: Int64 { 0 }
    var pendingWrites: Int { 0 }
    var isWritable: Bool { false }

    // MARK: Objects

    func objectKind(_ id: String) async throws -> String? {
        try await read { transaction in
            let rows = try await transaction.query("""
                SELECT 'experiment' FROM boxcar.experiments WHERE id = \(id)
                UNION ALL SELECT 'model' FROM boxcar.models WHERE id = \(id)
                UNION ALL SELECT 'model-version' FROM boxcar.model_versions WHERE id = \(id)
                UNION ALL SELECT 'checkpoint' FROM boxcar.checkpoints WHERE id = \(id)
                UNION ALL (SELECT 'file' FROM boxcar.files WHERE id = \(id) LIMIT 1)
                LIMIT 1
                """)
            for try await kind in rows.decode(String.self) { return kind }
            return nil
        }
    }

    /// Throws NotFoundError unless `id` names an object, as the agent does.
    private func requireObject(_ id: String) async throws {
        guard try await objectKind(id) != nil else {
            throw NotFoundError("\(id) names no experiment, checkpoint, model, version or file")
        }
    }

    // MARK: Experiments and metadata

    func experiment(id: String) async throws -> Experiment? {
        try await experiments(where: "WHERE id = $1", id).first
    }

    func experiments(namespace: String?) async throws -> [Experiment] {
        if let namespace { return try await experiments(where: "WHERE namespace = $1", namespace) }
        return try await experiments(where: "", nil)
    }

    private func experiments(where filter: String, _ argument: String?) async throws -> [Experiment] {
        var bindings = PostgresBindings()
        if let argument { bindings.append(argument) }
        let query = PostgresQuery(unsafeSQL: """
            SELECT id, name, namespace, owner, framework, task, external_id, created_ns, updated_ns
            FROM boxcar.experiments \(filter) ORDER BY created_ns, id
            """, binds: bindings)
        return try await read { transaction in
            var out: [Experiment] = []
            for try await (id, name, namespace, owner, framework, task, external, created, updated) in try await transaction
                .query(query)
                .decode((String, String, String, String, Int32, String, String, Int64, Int64).self)
            {
                out.append(Experiment(
                    id: id, name: name, namespace: namespace, owner: owner,
                    framework: MLFramework(rawValue: framework) ?? .unknown, task: task, externalID: external,
                    createdAt: created, updatedAt: updated))
            }
            return out
        }
    }

    func metadata(parentID: String) async throws -> BoxcarModel.Metadata {
        try await requireObject(parentID)
        return try await read { transaction in
            var out: BoxcarModel.Metadata = [:]
            for try await (key, value) in try await transaction.query(
                "SELECT key, value FROM boxcar.metadata WHERE parent_id = \(parentID)"
            ).decode((String, String).self) {
                out[key] = try JSONValue(jsonText: value)
            }
            return out
        }
    }

    // MARK: Metrics and events

    /// The parent's series from every agent, merged by key; an experiment also gets, from each
    /// agent whose trainers were attached to it, that machine's series inside those windows.
    /// Series of the machine (`system/…`: its own, and the trainer's process tree) are labelled
    /// with their host, so that two machines' are never taken for one.
    func metrics(parentID: String, keys: [String]?, range: MetricRange?) async throws -> [(key: String, columns: MetricColumns)] {
        guard let kind = try await objectKind(parentID) else {
            throw NotFoundError("\(parentID) names no experiment, checkpoint, model, version or file")
        }
        var bindings = PostgresBindings()
        bindings.append(parentID)
        bindings.append(keys)
        // Keys of the machine are asked for with their host label, which the rows do not hold:
        // those are chosen once labelled, below.
        var series = try await blocks(
            PostgresQuery(unsafeSQL: """
                SELECT b.key, g.host, b.data FROM boxcar.metric_blocks b JOIN boxcar.agents g ON g.agent_id = b.agent_id
                WHERE b.parent_id = $1 AND ($2::text[] IS NULL OR b.key = ANY($2) OR b.key LIKE 'system/%')
                ORDER BY b.key, g.host, b.agent_id, b.seq
                """, binds: bindings),
            window: nil)
        if kind == "experiment" {
            for (agent, windows) in try await attachmentWindows(experimentID: parentID) {
                let lower = windows.map(\.lowerBound).min()!
                var bindings = PostgresBindings()
                bindings.append(agent)
                bindings.append(lower)
                bindings.append(windows.map(\.upperBound).max()!)
                // The machine's blocks hold a tick or a few: one that starts a day before the window
                // cannot reach into it, and that bound on the partition key skips older days.
                bindings.append(lower - Partitions.day)
                series += try await blocks(
                    PostgresQuery(unsafeSQL: """
                        SELECT b.key, g.host, b.data FROM boxcar.metric_blocks b JOIN boxcar.agents g ON g.agent_id = b.agent_id
                        WHERE b.agent_id = $1 AND b.parent_id = 'host' AND b.wallclock_max >= $2 AND b.wallclock_min <= $3
                          AND b.wallclock_min >= $4
                        ORDER BY b.key, b.seq
                        """, binds: bindings),
                    window: windows)
            }
        }
        if let keys {
            let wanted = Set(keys)
            series = series.filter { wanted.contains($0.key) }
        }
        // Filtered once decoded: the blocks are read whole.
        if let range {
            series = series.map { ($0.key, range.filter($0.columns)) }.filter { !$0.1.isEmpty }
        }
        return Self.merged(series)
    }

    /// One series a key, keys in order: two agents of one host (a machine whose agent started
    /// over on a new database) give the same labelled key, whose points are one series.
    static func merged(_ series: [(key: String, columns: MetricColumns)]) -> [(key: String, columns: MetricColumns)] {
        var out: [(key: String, columns: MetricColumns)] = []
        for entry in series.sorted(by: { $0.key < $1.key }) {
            guard out.last?.key == entry.key else {
                out.append(entry)
                continue
            }
            for index in 0..<entry.columns.count { out[out.count - 1].columns.append(entry.columns.point(at: index)) }
            out[out.count - 1].columns.sortByStep()
        }
        return out
    }

    /// The blocks `query` returns (key, host, data; ordered by key and host), decoded into one
    /// series a labelled key, each sorted by step (then wallclock, then arrival); with a window,
    /// only its points.
    private func blocks(
        _ query: PostgresQuery, window: [ClosedRange<Int64>]?
    ) async throws -> [(key: String, columns: MetricColumns)] {
        let decoded = try await read { transaction in
            var out: [SeriesColumns] = []
            for try await (key, host, data) in try await transaction.query(query)
                .decode((String, String, ByteBuffer).self)
            {
                let labelled = key.hasPrefix("system/") ? Self.labelled(key, host: host) : key
                if out.last?.key != labelled { out.append(SeriesColumns(key: labelled, columns: MetricColumns())) }
                try data.withUnsafeReadableBytes { try MetricBlock.decode($0, into: &out[out.count - 1].columns) }
            }
            return out
        }
        return decoded.compactMap { entry in
            var columns = entry.columns
            if let window {
                columns = columns.selecting((0..<columns.count).filter { index in
                    window.contains { $0.contains(columns.wallclocks[index]) }
                })
                if columns.isEmpty { return nil }
            }
            columns.sortByStep()
            return (entry.key, columns)
        }
    }

    private struct SeriesColumns: Sendable {
        var key: String
        var columns: MetricColumns
    }

    /// For each agent whose trainers were attached to the experiment: the windows (an open one
    /// ends now).
    private func attachmentWindows(experimentID: String) async throws -> [(UUID, [ClosedRange<Int64>])] {
        let rows = try await read { transaction in
            var out: [AttachmentRow] = []
            for try await (agent, attached, detached) in try await transaction.query("""
                SELECT agent_id, attached_ns, detached_ns FROM boxcar.attachments
                WHERE experiment_id = \(experimentID) ORDER BY agent_id, attached_ns
                """).decode((UUID, Int64, Int64?).self)
            {
                out.append(AttachmentRow(agent: agent, attached: attached, detached: detached))
            }
            return out
        }
        let now = WallClock.now()
        var out: [(UUID, [ClosedRange<Int64>])] = []
        for row in rows {
            let end = row.detached ?? now
            guard end >= row.attached else { continue }
            if out.last?.0 != row.agent { out.append((row.agent, [])) }
            out[out.count - 1].1.append(row.attached...end)
        }
        return out
    }

    private struct AttachmentRow: Sendable {
        var agent: UUID
        var attached: Int64
        var detached: Int64?
    }

    /// A machine series' key with `host="…"` among its labels, which stay sorted by name as the
    /// agent writes them: `system/x{cpu="0"}` → `system/x{cpu="0",host="n"}`. A key that has a
    /// host label of its own keeps it.
    static func labelled(_ key: String, host: String) -> String {
        let escaped = host.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        let label = "host=\"\(escaped)\""
        guard let open = key.firstIndex(of: "{"), key.hasSuffix("}") else { return key + "{" + label + "}" }
        // The labels, each `name="value"` with `\\`, `\"` and `\n` escaped inside the quotes.
        var labels: [Substring] = []
        var start = key.index(after: open)
        var index = start
        var quoted = false
        let end = key.index(before: key.endIndex)
        while index < end {
            let character = key[index]
            if quoted && character == "\\" {
                index = key.index(index, offsetBy: 2, limitedBy: end) ?? end
                continue
            }
            if character == "\"" { quoted.toggle() }
            if character == "," && !quoted {
                labels.append(key[start..<index])
                start = key.index(after: index)
            }
            index = key.index(after: index)
        }
        if start < end { labels.append(key[start..<end]) }
        func name(_ label: Substring) -> Substring { label.prefix { $0 != "=" } }
        if labels.contains(where: { name($0) == "host" }) { return key }
        let position = labels.firstIndex { name($0) > "host" } ?? labels.endIndex
        labels.insert(Substring(label), at: position)
        return key[...open] + labels.joined(separator: ",") + "}"
    }

    func events(parentID: String, since: Nanoseconds) async throws -> [Event] {
        try await requireObject(parentID)
        return try await read { transaction in
            var out: [Event] = []
            for try await (parent, name, source, wallclock, metadata, created) in try await transaction.query("""
                SELECT parent_id, name, source, wallclock_ns, metadata, created_ns FROM boxcar.events
                WHERE parent_id = \(parentID) AND wallclock_ns >= \(since) ORDER BY wallclock_ns, agent_id, seq
                """).decode((String, String, String, Int64, String, Int64).self)
            {
                out.append(Event(
                    parentID: parent, name: name, source: source, wallclock: wallclock,
                    metadata: try BoxcarModel.Metadata(jsonText: metadata), createdAt: created))
            }
            return out
        }
    }

    // MARK: Files, checkpoints and models

    func files(parentID: String) async throws -> [FileRecord] {
        try await requireObject(parentID)
        return try await files(where: "parent_id = $1", parentID)
    }

    func file(id: String) async throws -> FileRecord? {
        try await files(where: "id = $1", id).first
    }

    /// Files as the agents recorded them; one recorded by several agents (the same id) once, as
    /// the agent that updated it last holds it.
    private func files(where filter: String, _ argument: String) async throws -> [FileRecord] {
        var bindings = PostgresBindings()
        bindings.append(argument)
        let query = PostgresQuery(unsafeSQL: """
            SELECT id, parent_id, file_type, checksum, path, blob, size, created_ns, updated_ns FROM (
                SELECT DISTINCT ON (id) id, parent_id, file_type, checksum, path, blob, size, created_ns, updated_ns,
                       agent_id, seq
                FROM boxcar.files WHERE \(filter) ORDER BY id, updated_ns DESC, agent_id
            ) f ORDER BY created_ns, agent_id, seq
            """, binds: bindings)
        return try await read { transaction in
            var out: [FileRecord] = []
            for try await (id, parent, type, checksum, path, blob, size, created, updated) in try await transaction
                .query(query)
                .decode((String, String, Int32, String, String, String?, Int64?, Int64, Int64).self)
            {
                out.append(FileRecord(
                    id: id, parentID: parent, fileType: FileType(rawValue: type) ?? .undefined, checksum: checksum,
                    path: path, blob: blob, size: size, createdAt: created, updatedAt: updated))
            }
            return out
        }
    }

    func checkpoint(experimentID: String, epoch: UInt64) async throws -> (Checkpoint, [FileRecord])? {
        guard let checkpoint = try await checkpoints(experimentID, epoch: epoch).first else { return nil }
        return (checkpoint, try await files(where: "parent_id = $1", checkpoint.id))
    }

    func checkpoints(experimentID: String) async throws -> [(Checkpoint, [FileRecord])] {
        guard try await experiment(id: experimentID) != nil else {
            throw NotFoundError("experiment \(experimentID) does not exist")
        }
        var out: [(Checkpoint, [FileRecord])] = []
        for checkpoint in try await checkpoints(experimentID, epoch: nil) {
            out.append((checkpoint, try await files(where: "parent_id = $1", checkpoint.id)))
        }
        return out
    }

    private func checkpoints(_ experimentID: String, epoch: UInt64?) async throws -> [Checkpoint] {
        let signed = epoch.map { Int64(bitPattern: $0) }
        return try await read { transaction in
            var out: [Checkpoint] = []
            for try await (id, experiment, epoch, metricsJSON, created, updated) in try await transaction.query("""
                SELECT id, experiment_id, epoch, metrics, created_ns, updated_ns FROM boxcar.checkpoints
                WHERE experiment_id = \(experimentID) AND (\(signed)::bigint IS NULL OR epoch = \(signed))
                ORDER BY epoch
                """).decode((String, String, Int64, String, Int64, Int64).self)
            {
                var metrics: [String: Float] = [:]
                for (key, value) in try BoxcarModel.Metadata(jsonText: metricsJSON) {
                    if case .number(let number) = value { metrics[key] = Float(number) }
                }
                out.append(Checkpoint(
                    id: id, experimentID: experiment, epoch: UInt64(bitPattern: epoch), metrics: metrics,
                    createdAt: created, updatedAt: updated))
            }
            return out
        }
    }

    func models(namespace: String) async throws -> [(Model, [FileRecord])] {
        let models = try await read { transaction in
            var out: [Model] = []
            for try await (id, name, owner, namespace, description, task, created, updated) in try await transaction.query("""
                SELECT id, name, owner, namespace, description, task, created_ns, updated_ns FROM boxcar.models
                WHERE namespace = \(namespace) ORDER BY created_ns, id
                """).decode((String, String, String, String, String, String, Int64, Int64).self)
            {
                out.append(Model(
                    id: id, name: name, owner: owner, namespace: namespace, description: description, task: task,
                    createdAt: created, updatedAt: updated))
            }
            return out
        }
        var out: [(Model, [FileRecord])] = []
        for model in models { out.append((model, try await files(where: "parent_id = $1", model.id))) }
        return out
    }

    /// The most recently created or updated version of a model, with its files and metadata.
    func latestModelVersion(modelID: String) async throws -> (ModelVersion, [FileRecord], BoxcarModel.Metadata)? {
        guard try await objectKind(modelID) == "model" else {
            throw NotFoundError("model \(modelID) does not exist")
        }
        let version = try await read { transaction -> ModelVersion? in
            for try await (id, model, name, version, description, framework, tags, created, updated) in try await transaction
                .query("""
                    SELECT id, model_id, name, version, description, framework, unique_tags, created_ns, updated_ns
                    FROM boxcar.model_versions WHERE model_id = \(modelID) ORDER BY updated_ns DESC, id DESC LIMIT 1
                    """)
                .decode((String, String, String, String, String, Int32, String, Int64, Int64).self)
            {
                var uniqueTags: [String] = []
                if case .array(let values) = try JSONValue(jsonText: tags) {
                    uniqueTags = values.compactMap { if case .string(let tag) = $0 { tag } else { nil } }
                }
                return ModelVersion(
                    id: id, modelID: model, name: name, version: version, description: description,
                    framework: MLFramework(rawValue: framework) ?? .unknown, uniqueTags: uniqueTags,
                    createdAt: created, updatedAt: updated)
            }
            return nil
        }
        guard let version else { return nil }
        return (version, try await files(where: "parent_id = $1", version.id), try await metadata(parentID: version.id))
    }

    // MARK: Writes: refused

    private var readOnly: ReadOnlyError {
        ReadOnlyError(
            location: location,
            reason: "the collector is read here, not written: records reach it from agents forwarding to it (boxcar agent --upstream)")
    }

    func createExperiment(_ new: NewExperiment) async throws -> (experiment: Experiment, existed: Bool) { throw readOnly }
    func updateMetadata(parentID: String, metadata: BoxcarModel.Metadata) async throws -> Nanoseconds { throw readOnly }
    func appendMetrics(parentID: String, key: String, columns: MetricColumns) async throws { throw readOnly }
    func submitIngest(_ batch: IngestBatch, chain: WriteChain?) async throws -> Pending<Int64> { throw readOnly }
    func logEvent(_ event: Event) async throws -> Nanoseconds { throw readOnly }
    func addFiles(_ files: [NewFile]) async throws -> [FileRecord] { throw readOnly }
    func createCheckpoint(_ new: NewCheckpoint) async throws -> Checkpoint { throw readOnly }
    func createModel(_ new: NewModel) async throws -> (model: Model, existed: Bool) { throw readOnly }
    func createModelVersion(_ new: NewModelVersion) async throws -> ModelVersion { throw readOnly }
    func attach(experimentID: String, pid: Int32) async throws -> Nanoseconds { throw readOnly }
    func detach(experimentID: String, pid: Int32) async throws -> Nanoseconds { throw readOnly }

    // MARK: Reading

    /// Runs one read in a read-only transaction: the server ends a statement past 40 s
    /// (Transaction's timeouts), so a heavy read cannot hold a pooled connection that forwarding
    /// needs, and the read is given up after 60 s. PostgreSQL out of reach is UNAVAILABLE (worth
    /// retrying); a failed statement is INTERNAL, with PostgreSQL's words.
    private func read<R: Sendable>(
        _ body: @escaping @Sendable (Transaction) async throws -> R
    ) async throws -> R {
        do {
            return try await Transaction.run(client, logger: logger, deadline: Self.readDeadline) { transaction in
                try await transaction.query("SET TRANSACTION READ ONLY")
                return try await body(transaction)
            }
        } catch let error as PSQLError where Self.unreachable.contains(error.code) {
            throw RPCError(code: .unavailable, message: "PostgreSQL cannot be reached: \(describePostgres(error))")
        } catch let error as PSQLError {
            throw RPCError(code: .internalError, message: "PostgreSQL: \(describePostgres(error))")
        } catch let error as Transaction.DeadlinePassed {
            throw RPCError(code: .unavailable, message: "PostgreSQL: \(error)")
        } catch is Transaction.ConnectionLost {
            throw RPCError(code: .unavailable, message: "PostgreSQL closed the connection during the read")
        }
    }

    private static let unreachable: [PSQLError.Code] = [
        .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed,
        .sslUnsupported,
    ]
}
