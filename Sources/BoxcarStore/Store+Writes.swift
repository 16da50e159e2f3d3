import BoxcarModel
import BoxcarStorage

/// Every write of the agent. Each runs as one job of the writer: validated against what the
/// database holds (unknown parents are NOT_FOUND), stored whole, acknowledged after commit.
extension Store {
    // MARK: Experiments


    /// Creates the experiment, or finds the one with the same derived id and changes nothing.
    public func createExperiment(_ new: NewExperiment) async throws -> (experiment: Experiment, existed: Bool) {
        let metadataText = try new.metadata.mapValues { try $0.jsonText() }
        return try await write(rows: 1 + new.metadata.count) { context in
            let id = Identifiers.experiment(name: new.name, namespace: new.namespace)
            if let existing = try Self.experiment(id: id, connection: context.connection) {
                return (existing, true)
            }
            let now = WallClock.now()
            let seq = context.nextSequence()
            let insert = try context.connection.statement("""
                INSERT INTO experiments (id, name, namespace, owner, framework, task, external_id,
                                         created_ns, updated_ns, seq)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            insert.bind([
                id, new.name, new.namespace, new.owner, new.framework.rawValue, new.task,
                new.externalID, now, now, seq,
            ])
            try insert.run()
            try context.registerObject(id: id, kind: "experiment", namespace: new.namespace, seq: seq)
            try Self.upsertMetadata(context, parentID: id, values: metadataText, now: now)
            let experiment = Experiment(
                id: id, name: new.name, namespace: new.namespace, owner: new.owner,
                framework: new.framework, task: new.task, externalID: new.externalID,
                createdAt: now, updatedAt: now)
            return (experiment, false)
        }
    }

    // MARK: Metadata

    /// Upserts each key for `parentID`; last write wins per key. Returns the time written.
    public func updateMetadata(parentID: String, metadata: Metadata) async throws -> Nanoseconds {
        let values = try metadata.mapValues { try $0.jsonText() }
        return try await write(rows: values.count) { context in
            try context.requireParent(parentID)
            let now = WallClock.now()
            try Self.upsertMetadata(context, parentID: parentID, values: values, now: now)
            return now
        }
    }

    static func upsertMetadata(
        _ context: WriteContext, parentID: String, values: [String: String], now: Nanoseconds
    ) throws {
        guard !values.isEmpty else { return }
        let statement = try context.connection.statement("""
            INSERT INTO metadata (parent_id, key, value, updated_ns, seq) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (parent_id, key) DO UPDATE
            SET value = excluded.value, updated_ns = excluded.updated_ns, seq = excluded.seq
            """)
        for key in values.keys.sorted() {
            statement.bind([parentID, key, values[key]!, now, context.nextSequence()])
            try statement.run()
        }
        // New metadata is a change of its experiment or model (WatchNamespace reports it), under
        // a new seq so that an upstream is sent the changed row too.
        let table: String? = switch try Self.objectKind(parentID, connection: context.connection) {
        case "experiment": "experiments"
        case "model": "models"
        default: nil
        }
        if let table {
            let touch = try context.connection.statement("UPDATE \(table) SET updated_ns = ?, seq = ? WHERE id = ?")
            touch.bind([now, context.nextSequence(), parentID])
            try touch.run()
        }
    }

    // MARK: Metrics and events

    /// Queues a batch and returns at once with the promise of its commit: a stream keeps reading
    /// while earlier batches commit, and batches commit in the order they were submitted. With a
    /// chain, a batch whose predecessor in the chain failed is refused without being stored.
    public func submitIngest(_ batch: IngestBatch, chain: WriteChain? = nil) async throws -> Pending<Int64> {
        let events = try batch.events.map { ($0, try $0.metadata.jsonText()) }
        let metadata = try batch.metadata.map { ($0.parentID, try $0.metadata.mapValues { try $0.jsonText() }) }
        guard let writer else { throw ReadOnlyError(location: path) }
        return try await writer.submit({ context in
            if let chain, chain.isBroken { throw WriteChain.Broken() }
            for series in batch.series where !series.columns.isEmpty {
                try context.requireParent(series.parentID)
                try Self.appendBlock(context, parentID: series.parentID, key: series.key, columns: series.columns)
            }
            let now = WallClock.now()
            for (event, metadataText) in events {
                try context.requireParent(event.parentID)
                try Self.insertEvent(context, event, metadataText: metadataText, now: now)
            }
            for (parentID, values) in metadata {
                try context.requireParent(parentID)
                try Self.upsertMetadata(context, parentID: parentID, values: values, now: now)
            }
            return context.sequence
        }, onFailure: { chain?.breakChain() })
    }

    /// Appends points to one series (ModelBox's LogMetrics, one point per call).
    public func appendMetrics(parentID: String, key: String, columns: MetricColumns) async throws {
        try await write { context in
            try context.requireParent(parentID)
            try Self.appendBlock(context, parentID: parentID, key: key, columns: columns)
        }
    }

    static func appendBlock(_ context: WriteContext, parentID: String, key: String, columns: MetricColumns) throws {
        let seriesID = try context.seriesID(parentID: parentID, key: key)
        let statement = try context.connection.statement("""
            INSERT INTO metric_blocks (seq, series_id, count, step_min, step_max, wallclock_min,
                                       wallclock_max, data)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        // Steps are unsigned on the wire; SQLite integers are signed. Store the same 64 bits.
        let steps = columns.steps.map { Int64(bitPattern: $0) }
        statement.bind(1, context.nextSequence())
        statement.bind(2, seriesID)
        statement.bind(3, Int64(columns.count))
        statement.bind(4, steps.min() ?? 0)
        statement.bind(5, steps.max() ?? 0)
        statement.bind(6, columns.wallclocks.min() ?? 0)
        statement.bind(7, columns.wallclocks.max() ?? 0)
        statement.bind(8, blob: MetricBlock.encode(columns))
        try statement.run()
    }

    public func logEvent(_ event: Event) async throws -> Nanoseconds {
        let metadataText = try event.metadata.jsonText()
        return try await write { context in
            try context.requireParent(event.parentID)
            let now = WallClock.now()
            try Self.insertEvent(context, event, metadataText: metadataText, now: now)
            return now
        }
    }

    static func insertEvent(_ context: WriteContext, _ event: Event, metadataText: String, now: Nanoseconds) throws {
        let statement = try context.connection.statement("""
            INSERT INTO events (seq, parent_id, name, source, wallclock_ns, metadata, created_ns)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        statement.bind([
            context.nextSequence(), event.parentID, event.name, event.source, event.wallclock,
            metadataText, now,
        ])
        try statement.run()
    }

    // MARK: Files


    /// Records files (tracked, or uploaded when `blob` is set); all or none.
    public func addFiles(_ files: [NewFile]) async throws -> [FileRecord] {
        try await write(rows: files.count) { context in
            let now = WallClock.now()
            return try files.map { file in
                try context.requireParent(file.parentID)
                return try Self.insertFile(context, file, now: now)
            }
        }
    }

    static func insertFile(_ context: WriteContext, _ file: NewFile, now: Nanoseconds) throws -> FileRecord {
        let id = Identifiers.randomFileID()
        let seq = context.nextSequence()
        let statement = try context.connection.statement("""
            INSERT INTO files (seq, id, parent_id, file_type, checksum, path, blob, size, created_ns,
                               updated_ns)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        statement.bind([
            seq, id, file.parentID, file.fileType.rawValue, file.checksum, file.path, file.blob,
            file.size, now, now,
        ])
        try statement.run()
        try context.registerObject(id: id, kind: "file", namespace: "", seq: seq)
        return FileRecord(
            id: id, parentID: file.parentID, fileType: file.fileType, checksum: file.checksum,
            path: file.path, blob: file.blob, size: file.size, createdAt: now, updatedAt: now)
    }

    // MARK: Checkpoints

    /// Creates the checkpoint of an experiment at an epoch; a second call for the same epoch
    /// updates it (its metrics replaced, files added, metadata upserted).
    public func createCheckpoint(_ new: NewCheckpoint) async throws -> Checkpoint {
        let (experimentID, epoch, metrics, files, metadata) = (new.experimentID, new.epoch, new.metrics, new.files, new.metadata)
        let metricsText = try JSONValue.object(metrics.mapValues { .number(Double($0)) }).jsonText()
        let metadataText = try metadata.mapValues { try $0.jsonText() }
        return try await write(rows: 1 + files.count + metadata.count) { context in
            guard try Self.experiment(id: experimentID, connection: context.connection) != nil else {
                throw NotFoundError("experiment \(experimentID) does not exist")
            }
            let id = Identifiers.checkpoint(experimentID: experimentID, epoch: epoch)
            let now = WallClock.now()
            let seq = context.nextSequence()
            let existing = try Self.checkpoint(experimentID: experimentID, epoch: epoch, connection: context.connection)
            let statement = try context.connection.statement("""
                INSERT INTO checkpoints (id, experiment_id, epoch, metrics, created_ns, updated_ns, seq)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE
                SET metrics = excluded.metrics, updated_ns = excluded.updated_ns, seq = excluded.seq
                """)
            statement.bind([id, experimentID, Int64(bitPattern: epoch), metricsText, now, now, seq])
            try statement.run()
            if existing == nil {
                try context.registerObject(id: id, kind: "checkpoint", namespace: "", seq: seq)
            }
            for file in files {
                var file = file
                file.parentID = id
                _ = try Self.insertFile(context, file, now: now)
            }
            try Self.upsertMetadata(context, parentID: id, values: metadataText, now: now)
            return Checkpoint(
                id: id, experimentID: experimentID, epoch: epoch, metrics: metrics,
                createdAt: existing?.createdAt ?? now, updatedAt: now)
        }
    }

    // MARK: Models


    /// Creates a model, or finds the one of the same name and namespace and changes nothing.
    public func createModel(_ new: NewModel) async throws -> (model: Model, existed: Bool) {
        let metadataText = try new.metadata.mapValues { try $0.jsonText() }
        return try await write(rows: 1 + new.files.count + new.metadata.count) { context in
            let id = Identifiers.model(name: new.name, namespace: new.namespace)
            if let existing = try Self.model(id: id, connection: context.connection) {
                return (existing, true)
            }
            let now = WallClock.now()
            let seq = context.nextSequence()
            let statement = try context.connection.statement("""
                INSERT INTO models (id, name, owner, namespace, description, task, created_ns,
                                    updated_ns, seq)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            statement.bind([id, new.name, new.owner, new.namespace, new.description, new.task, now, now, seq])
            try statement.run()
            try context.registerObject(id: id, kind: "model", namespace: new.namespace, seq: seq)
            for file in new.files {
                var file = file
                file.parentID = id
                _ = try Self.insertFile(context, file, now: now)
            }
            try Self.upsertMetadata(context, parentID: id, values: metadataText, now: now)
            let model = Model(
                id: id, name: new.name, owner: new.owner, namespace: new.namespace,
                description: new.description, task: new.task, createdAt: now, updatedAt: now)
            return (model, false)
        }
    }


    /// Creates a version of a model, or updates the one with the same name and version.
    public func createModelVersion(_ new: NewModelVersion) async throws -> ModelVersion {
        let metadataText = try new.metadata.mapValues { try $0.jsonText() }
        let tagsText = try JSONValue.array(new.uniqueTags.map(JSONValue.string)).jsonText()
        return try await write(rows: 1 + new.files.count + new.metadata.count) { context in
            guard try Self.model(id: new.modelID, connection: context.connection) != nil else {
                throw NotFoundError("model \(new.modelID) does not exist")
            }
            let id = Identifiers.modelVersion(modelID: new.modelID, name: new.name, version: new.version)
            let existing = try Self.modelVersion(id: id, connection: context.connection)
            let now = WallClock.now()
            let seq = context.nextSequence()
            let statement = try context.connection.statement("""
                INSERT INTO model_versions (id, model_id, name, version, description, framework,
                                            unique_tags, created_ns, updated_ns, seq)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE
                SET description = excluded.description, framework = excluded.framework,
                    unique_tags = excluded.unique_tags, updated_ns = excluded.updated_ns,
                    seq = excluded.seq
                """)
            statement.bind([
                id, new.modelID, new.name, new.version, new.description, new.framework.rawValue,
                tagsText, now, now, seq,
            ])
            try statement.run()
            if existing == nil {
                try context.registerObject(id: id, kind: "model-version", namespace: "", seq: seq)
            }
            for file in new.files {
                var file = file
                file.parentID = id
                _ = try Self.insertFile(context, file, now: now)
            }
            try Self.upsertMetadata(context, parentID: id, values: metadataText, now: now)
            return ModelVersion(
                id: id, modelID: new.modelID, name: new.name, version: new.version,
                description: new.description, framework: new.framework, uniqueTags: new.uniqueTags,
                createdAt: existing?.createdAt ?? now, updatedAt: now)
        }
    }

    // MARK: Attachments

    public func attach(experimentID: String, pid: Int32) async throws -> Nanoseconds {
        try await write { context in
            guard try Self.experiment(id: experimentID, connection: context.connection) != nil else {
                throw NotFoundError("experiment \(experimentID) does not exist")
            }
            let now = WallClock.now()
            let statement = try context.connection.statement(
                "INSERT INTO attachments (seq, experiment_id, pid, attached_ns) VALUES (?, ?, ?, ?)")
            statement.bind([context.nextSequence(), experimentID, pid, now])
            try statement.run()
            return now
        }
    }

    /// Closes the open attachment of `pid` to the experiment.
    public func detach(experimentID: String, pid: Int32) async throws -> Nanoseconds {
        try await write { context in
            let now = WallClock.now()
            // A new seq, so that the forwarder ships the closed window again.
            let statement = try context.connection.statement("""
                UPDATE attachments SET detached_ns = ?, seq = ?
                WHERE experiment_id = ? AND pid = ? AND detached_ns IS NULL
                """)
            statement.bind([now, context.nextSequence(), experimentID, pid])
            try statement.run()
            guard context.connection.changes > 0 else {
                throw NotFoundError("process \(pid) is not attached to experiment \(experimentID)")
            }
            return now
        }
    }
}
