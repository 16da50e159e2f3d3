import BoxcarModel
import BoxcarStorage

/// Every query. Each runs on a reader connection inside one read transaction, beside the writer.
extension Store {
    // MARK: Objects

    /// The kind of object `id` names ("experiment", "model", "model-version", "checkpoint",
    /// "file"), or nil.
    public func objectKind(_ id: String) async throws -> String? {
        try await read { connection in try Self.objectKind(id, connection: connection) }
    }

    static func objectKind(_ id: String, connection: Connection) throws -> String? {
        let statement = try connection.statement("SELECT kind FROM objects WHERE id = ?")
        defer { statement.reset() }
        statement.bind(1, id)
        return try statement.step() ? statement.string(0) : nil
    }

    /// Throws NotFoundError unless `id` names an object: reads of an unknown parent are refused,
    /// not answered with nothing.
    static func requireObject(_ id: String, connection: Connection) throws {
        guard try objectKind(id, connection: connection) != nil else {
            throw NotFoundError("\(id) names no experiment, checkpoint, model, version or file")
        }
    }

    // MARK: Experiments

    public func experiment(id: String) async throws -> Experiment? {
        try await read { connection in try Self.experiment(id: id, connection: connection) }
    }

    /// Every experiment, or those of one namespace, oldest first.
    public func experiments(namespace: String?) async throws -> [Experiment] {
        try await read { connection in
            let statement = try connection.statement(
                namespace == nil
                    ? "SELECT \(Self.experimentColumns) FROM experiments ORDER BY created_ns, id"
                    : "SELECT \(Self.experimentColumns) FROM experiments WHERE namespace = ? ORDER BY created_ns, id")
            defer { statement.reset() }
            if let namespace { statement.bind(1, namespace) }
            var out: [Experiment] = []
            while try statement.step() { out.append(Self.experiment(from: statement)) }
            return out
        }
    }

    static let experimentColumns =
        "id, name, namespace, owner, framework, task, external_id, created_ns, updated_ns"

    static func experiment(id: String, connection: Connection) throws -> Experiment? {
        let statement = try connection.statement(
            "SELECT \(experimentColumns) FROM experiments WHERE id = ?")
        defer { statement.reset() }
        statement.bind(1, id)
        return try statement.step() ? experiment(from: statement) : nil
    }

    private static func experiment(from row: Statement) -> Experiment {
        Experiment(
            id: row.string(0), name: row.string(1), namespace: row.string(2), owner: row.string(3),
            framework: MLFramework(rawValue: Int32(row.int64(4))) ?? .unknown, task: row.string(5),
            externalID: row.string(6), createdAt: row.int64(7), updatedAt: row.int64(8))
    }

    // MARK: Metadata

    public func metadata(parentID: String) async throws -> Metadata {
        try await read { connection in
            try Self.requireObject(parentID, connection: connection)
            return try Self.metadata(parentID: parentID, connection: connection)
        }
    }

    static func metadata(parentID: String, connection: Connection) throws -> Metadata {
        let statement = try connection.statement("SELECT key, value FROM metadata WHERE parent_id = ?")
        defer { statement.reset() }
        statement.bind(1, parentID)
        var out: Metadata = [:]
        while try statement.step() {
            out[statement.string(0)] = try JSONValue(jsonText: statement.string(1))
        }
        return out
    }

    // MARK: Events

    /// The parent's events with wallclock at or after `since`, oldest first (by wallclock, then
    /// by arrival).
    public func events(parentID: String, since: Nanoseconds) async throws -> [Event] {
        try await read { connection in
            try Self.requireObject(parentID, connection: connection)
            let statement = try connection.statement("""
                SELECT parent_id, name, source, wallclock_ns, metadata, created_ns FROM events
                WHERE parent_id = ? AND wallclock_ns >= ? ORDER BY wallclock_ns, seq
                """)
            defer { statement.reset() }
            statement.bind(1, parentID)
            statement.bind(2, since)
            var out: [Event] = []
            while try statement.step() {
                out.append(Event(
                    parentID: statement.string(0), name: statement.string(1),
                    source: statement.string(2), wallclock: statement.int64(3),
                    metadata: try Metadata(jsonText: statement.string(4)),
                    createdAt: statement.int64(5)))
            }
            return out
        }
    }

    // MARK: Files

    public func files(parentID: String) async throws -> [FileRecord] {
        try await read { connection in
            try Self.requireObject(parentID, connection: connection)
            return try Self.files(parentID: parentID, connection: connection)
        }
    }

    public func file(id: String) async throws -> FileRecord? {
        try await read { connection in
            let statement = try connection.statement("SELECT \(Self.fileColumns) FROM files WHERE id = ?")
            defer { statement.reset() }
            statement.bind(1, id)
            return try statement.step() ? Self.file(from: statement) : nil
        }
    }

    /// The blobs some file record names: what the artifact directory must keep.
    public func referencedBlobs() async throws -> Set<String> {
        try await read { connection in
            let statement = try connection.statement("SELECT DISTINCT blob FROM files WHERE blob IS NOT NULL")
            defer { statement.reset() }
            var blobs: Set<String> = []
            while try statement.step() { blobs.insert(statement.string(0)) }
            return blobs
        }
    }

    static let fileColumns =
        "id, parent_id, file_type, checksum, path, blob, size, created_ns, updated_ns"

    static func files(parentID: String, connection: Connection) throws -> [FileRecord] {
        let statement = try connection.statement(
            "SELECT \(fileColumns) FROM files WHERE parent_id = ? ORDER BY seq")
        defer { statement.reset() }
        statement.bind(1, parentID)
        var out: [FileRecord] = []
        while try statement.step() { out.append(file(from: statement)) }
        return out
    }

    private static func file(from row: Statement) -> FileRecord {
        FileRecord(
            id: row.string(0), parentID: row.string(1),
            fileType: FileType(rawValue: Int32(row.int64(2))) ?? .undefined, checksum: row.string(3),
            path: row.string(4), blob: row.optionalString(5), size: row.optionalInt64(6),
            createdAt: row.int64(7), updatedAt: row.int64(8))
    }

    // MARK: Checkpoints

    public func checkpoint(experimentID: String, epoch: UInt64) async throws -> (Checkpoint, [FileRecord])? {
        try await read { connection in
            guard let checkpoint = try Self.checkpoint(experimentID: experimentID, epoch: epoch, connection: connection)
            else { return nil }
            return (checkpoint, try Self.files(parentID: checkpoint.id, connection: connection))
        }
    }

    public func checkpoints(experimentID: String) async throws -> [(Checkpoint, [FileRecord])] {
        try await read { connection in
            guard try Self.experiment(id: experimentID, connection: connection) != nil else {
                throw NotFoundError("experiment \(experimentID) does not exist")
            }
            let statement = try connection.statement(
                "SELECT \(Self.checkpointColumns) FROM checkpoints WHERE experiment_id = ? ORDER BY epoch")
            statement.bind(1, experimentID)
            var checkpoints: [Checkpoint] = []
            while try statement.step() { checkpoints.append(try Self.checkpoint(from: statement)) }
            statement.reset()
            return try checkpoints.map { ($0, try Self.files(parentID: $0.id, connection: connection)) }
        }
    }

    static let checkpointColumns = "id, experiment_id, epoch, metrics, created_ns, updated_ns"

    static func checkpoint(experimentID: String, epoch: UInt64, connection: Connection) throws -> Checkpoint? {
        let statement = try connection.statement(
            "SELECT \(checkpointColumns) FROM checkpoints WHERE experiment_id = ? AND epoch = ?")
        defer { statement.reset() }
        statement.bind(1, experimentID)
        statement.bind(2, Int64(bitPattern: epoch))
        return try statement.step() ? checkpoint(from: statement) : nil
    }

    private static func checkpoint(from row: Statement) throws -> Checkpoint {
        var metrics: [String: Float] = [:]
        for (key, value) in try Metadata(jsonText: row.string(3)) {
            if case .number(let number) = value { metrics[key] = Float(number) }
        }
        return Checkpoint(
            id: row.string(0), experimentID: row.string(1), epoch: UInt64(bitPattern: row.int64(2)),
            metrics: metrics, createdAt: row.int64(4), updatedAt: row.int64(5))
    }

    // MARK: Models

    public func models(namespace: String) async throws -> [(Model, [FileRecord])] {
        try await read { connection in
            let statement = try connection.statement(
                "SELECT \(Self.modelColumns) FROM models WHERE namespace = ? ORDER BY created_ns, id")
            statement.bind(1, namespace)
            var models: [Model] = []
            while try statement.step() { models.append(Self.model(from: statement)) }
            statement.reset()
            return try models.map { ($0, try Self.files(parentID: $0.id, connection: connection)) }
        }
    }

    static let modelColumns = "id, name, owner, namespace, description, task, created_ns, updated_ns"

    static func model(id: String, connection: Connection) throws -> Model? {
        let statement = try connection.statement("SELECT \(modelColumns) FROM models WHERE id = ?")
        defer { statement.reset() }
        statement.bind(1, id)
        return try statement.step() ? model(from: statement) : nil
    }

    private static func model(from row: Statement) -> Model {
        Model(
            id: row.string(0), name: row.string(1), owner: row.string(2), namespace: row.string(3),
            description: row.string(4), task: row.string(5), createdAt: row.int64(6),
            updatedAt: row.int64(7))
    }

    /// The most recently created or updated version of a model, with its files and metadata.
    public func latestModelVersion(modelID: String) async throws -> (ModelVersion, [FileRecord], Metadata)? {
        try await read { connection in
            guard try Self.model(id: modelID, connection: connection) != nil else {
                throw NotFoundError("model \(modelID) does not exist")
            }
            let statement = try connection.statement(
                "SELECT id FROM model_versions WHERE model_id = ? ORDER BY seq DESC LIMIT 1")
            statement.bind(1, modelID)
            let id = try statement.step() ? statement.string(0) : nil
            statement.reset()
            guard let id, let version = try Self.modelVersion(id: id, connection: connection) else { return nil }
            return (
                version, try Self.files(parentID: id, connection: connection),
                try Self.metadata(parentID: id, connection: connection)
            )
        }
    }

    static func modelVersion(id: String, connection: Connection) throws -> ModelVersion? {
        let statement = try connection.statement("""
            SELECT id, model_id, name, version, description, framework, unique_tags, created_ns,
                   updated_ns
            FROM model_versions WHERE id = ?
            """)
        defer { statement.reset() }
        statement.bind(1, id)
        guard try statement.step() else { return nil }
        var tags: [String] = []
        if case .array(let values) = try JSONValue(jsonText: statement.string(6)) {
            tags = values.compactMap { if case .string(let tag) = $0 { tag } else { nil } }
        }
        return ModelVersion(
            id: statement.string(0), modelID: statement.string(1), name: statement.string(2),
            version: statement.string(3), description: statement.string(4),
            framework: MLFramework(rawValue: Int32(statement.int64(5))) ?? .unknown,
            uniqueTags: tags, createdAt: statement.int64(7), updatedAt: statement.int64(8))
    }

    // MARK: Attachments

    public func attachments(experimentID: String) async throws -> [Attachment] {
        try await read { connection in
            let statement = try connection.statement("""
                SELECT experiment_id, pid, attached_ns, detached_ns FROM attachments
                WHERE experiment_id = ? ORDER BY attached_ns, pid
                """)
            defer { statement.reset() }
            statement.bind(1, experimentID)
            var out: [Attachment] = []
            while try statement.step() {
                out.append(Attachment(
                    experimentID: statement.string(0), pid: Int32(statement.int64(1)),
                    attachedAt: statement.int64(2), detachedAt: statement.optionalInt64(3)))
            }
            return out
        }
    }
}
