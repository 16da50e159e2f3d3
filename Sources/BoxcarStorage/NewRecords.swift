import BoxcarModel

/// An experiment as a client asks for it; the store derives its id and times.
public struct NewExperiment: Sendable {
    public var name: String
    public var namespace: String
    public var owner: String
    public var framework: MLFramework
    public var task: String
    public var externalID: String
    public var metadata: Metadata

    public init(
        name: String, namespace: String, owner: String = "", framework: MLFramework = .unknown,
        task: String = "", externalID: String = "", metadata: Metadata = [:]
    ) {
        self.name = name
        self.namespace = namespace
        self.owner = owner
        self.framework = framework
        self.task = task
        self.externalID = externalID
        self.metadata = metadata
    }
}

/// A file to record: tracked (a path and checksum only) or uploaded (its bytes in the artifact
/// store under `blob`).
public struct NewFile: Sendable {
    public var parentID: String
    public var fileType: FileType
    public var checksum: String
    public var path: String
    /// For uploads: the SHA-256 of the bytes held in the artifact store, and their size.
    public var blob: String?
    public var size: Int64?

    public init(
        parentID: String, fileType: FileType, checksum: String, path: String,
        blob: String? = nil, size: Int64? = nil
    ) {
        self.parentID = parentID
        self.fileType = fileType
        self.checksum = checksum
        self.path = path
        self.blob = blob
        self.size = size
    }
}

/// A checkpoint of an experiment at an epoch; its files' parent is the checkpoint itself.
public struct NewCheckpoint: Sendable {
    public var experimentID: String
    public var epoch: UInt64
    public var metrics: [String: Float]
    public var files: [NewFile]
    public var metadata: Metadata

    public init(experimentID: String, epoch: UInt64, metrics: [String: Float], files: [NewFile], metadata: Metadata) {
        self.experimentID = experimentID
        self.epoch = epoch
        self.metrics = metrics
        self.files = files
        self.metadata = metadata
    }
}

public struct NewModel: Sendable {
    public var name: String
    public var owner: String
    public var namespace: String
    public var task: String
    public var description: String
    public var metadata: Metadata
    public var files: [NewFile]

    public init(
        name: String, owner: String, namespace: String, task: String, description: String,
        metadata: Metadata, files: [NewFile]
    ) {
        self.name = name
        self.owner = owner
        self.namespace = namespace
        self.task = task
        self.description = description
        self.metadata = metadata
        self.files = files
    }
}

public struct NewModelVersion: Sendable {
    public var modelID: String
    public var name: String
    public var version: String
    public var description: String
    public var framework: MLFramework
    public var uniqueTags: [String]
    public var metadata: Metadata
    public var files: [NewFile]

    public init(
        modelID: String, name: String, version: String, description: String,
        framework: MLFramework, uniqueTags: [String], metadata: Metadata, files: [NewFile]
    ) {
        self.modelID = modelID
        self.name = name
        self.version = version
        self.description = description
        self.framework = framework
        self.uniqueTags = uniqueTags
        self.metadata = metadata
        self.files = files
    }
}
