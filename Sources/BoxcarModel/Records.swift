// BoxcarModel: the domain values every other module speaks in (experiments, metric points and
// columns, events, files, checkpoints, models, metadata as JSON), their ids, the limits on input
// and the checks against them, and the varint codec. Pure values: no I/O, no threads, nothing of
// SQLite, gRPC or the machine.

/// Nanoseconds since the Unix epoch: every time the agent itself stamps.
public typealias Nanoseconds = Int64

public enum MLFramework: Int32, Sendable, Hashable, CaseIterable {
    case unknown = 0, pytorch = 1, keras = 2
}

public enum FileType: Int32, Sendable, Hashable, CaseIterable {
    case undefined = 0, model = 1, checkpoint = 2, text = 3, image = 4, audio = 5, video = 6
}

public struct Experiment: Sendable, Hashable {
    public var id: String
    public var name: String
    public var namespace: String
    public var owner: String
    public var framework: MLFramework
    public var task: String
    public var externalID: String
    public var createdAt: Nanoseconds
    public var updatedAt: Nanoseconds

    public init(
        id: String, name: String, namespace: String, owner: String, framework: MLFramework,
        task: String, externalID: String, createdAt: Nanoseconds, updatedAt: Nanoseconds
    ) {
        self.id = id
        self.name = name
        self.namespace = namespace
        self.owner = owner
        self.framework = framework
        self.task = task
        self.externalID = externalID
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

public struct Model: Sendable, Hashable {
    public var id: String
    public var name: String
    public var owner: String
    public var namespace: String
    public var description: String
    public var task: String
    public var createdAt: Nanoseconds
    public var updatedAt: Nanoseconds

    public init(
        id: String, name: String, owner: String, namespace: String, description: String,
        task: String, createdAt: Nanoseconds, updatedAt: Nanoseconds
    ) {
        self.id = id
        self.name = name
        self.owner = owner
        self.namespace = namespace
        self.description = description
        self.task = task
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

public struct ModelVersion: Sendable, Hashable {
    public var id: String
    public var modelID: String
    public var name: String
    public var version: String
    public var description: String
    public var framework: MLFramework
    public var uniqueTags: [String]
    public var createdAt: Nanoseconds
    public var updatedAt: Nanoseconds

    public init(
        id: String, modelID: String, name: String, version: String, description: String,
        framework: MLFramework, uniqueTags: [String], createdAt: Nanoseconds, updatedAt: Nanoseconds
    ) {
        self.id = id
        self.modelID = modelID
        self.name = name
        self.version = version
        self.description = description
        self.framework = framework
        self.uniqueTags = uniqueTags
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

public struct Checkpoint: Sendable, Hashable {
    public var id: String
    public var experimentID: String
    public var epoch: UInt64
    public var metrics: [String: Float]
    public var createdAt: Nanoseconds
    public var updatedAt: Nanoseconds

    public init(
        id: String, experimentID: String, epoch: UInt64, metrics: [String: Float],
        createdAt: Nanoseconds, updatedAt: Nanoseconds
    ) {
        self.id = id
        self.experimentID = experimentID
        self.epoch = epoch
        self.metrics = metrics
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A file known to the agent: tracked (only its description is recorded) or uploaded (its bytes
/// are held in the artifact store under `blob`, their SHA-256).
public struct FileRecord: Sendable, Hashable {
    public var id: String
    public var parentID: String
    public var fileType: FileType
    /// As the client sent it: ModelBox clients send an MD5 hex digest.
    public var checksum: String
    /// As the client sent it; never used to place bytes on disk.
    public var path: String
    public var blob: String?
    public var size: Int64?
    public var createdAt: Nanoseconds
    public var updatedAt: Nanoseconds

    public init(
        id: String, parentID: String, fileType: FileType, checksum: String, path: String,
        blob: String? = nil, size: Int64? = nil, createdAt: Nanoseconds, updatedAt: Nanoseconds
    ) {
        self.id = id
        self.parentID = parentID
        self.fileType = fileType
        self.checksum = checksum
        self.path = path
        self.blob = blob
        self.size = size
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

public struct Event: Sendable, Hashable {
    public var parentID: String
    public var name: String
    public var source: String
    public var wallclock: Nanoseconds
    public var metadata: Metadata
    public var createdAt: Nanoseconds

    public init(
        parentID: String, name: String, source: String, wallclock: Nanoseconds,
        metadata: Metadata, createdAt: Nanoseconds
    ) {
        self.parentID = parentID
        self.name = name
        self.source = source
        self.wallclock = wallclock
        self.metadata = metadata
        self.createdAt = createdAt
    }
}

public enum MetricValue: Sendable, Hashable {
    case float(Double)
    case string(String)
    case bytes([UInt8])
}

/// One logged value of a series. `wallclock` is kept exactly as the client sent it: ModelBox
/// clients choose its unit (the Python client sends Unix seconds as an unsigned integer, which is
/// stored as the same 64 bits), Boxcar's own API sends nanoseconds.
public struct MetricPoint: Sendable, Hashable {
    public var step: UInt64
    public var wallclock: Int64
    public var value: MetricValue

    public init(step: UInt64, wallclock: Int64, value: MetricValue) {
        self.step = step
        self.wallclock = wallclock
        self.value = value
    }
}

/// All the points of one key, ordered by step, then wallclock, then arrival.
public struct MetricSeries: Sendable, Hashable {
    public var key: String
    public var points: [MetricPoint]

    public init(key: String, points: [MetricPoint]) {
        self.key = key
        self.points = points
    }
}

/// A window during which a trainer process was attached to an experiment.
public struct Attachment: Sendable, Hashable {
    public var experimentID: String
    public var pid: Int32
    public var attachedAt: Nanoseconds
    public var detachedAt: Nanoseconds?

    public init(experimentID: String, pid: Int32, attachedAt: Nanoseconds, detachedAt: Nanoseconds?) {
        self.experimentID = experimentID
        self.pid = pid
        self.attachedAt = attachedAt
        self.detachedAt = detachedAt
    }
}
