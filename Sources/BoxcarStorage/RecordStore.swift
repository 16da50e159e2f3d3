import BoxcarModel

// BoxcarStorage: the seam between the services and whatever holds the records.
//
// The gRPC services (BoxcarServer) read and write through `RecordStore`; the agent's SQLite file
// (BoxcarStore) conforms today, and a PostgreSQL store can conform without the services
// changing. This module holds the protocol, the values its calls take, and the errors every store
// reports in the same words. It knows nothing of SQL, gRPC or HTTP.

/// What the services need of a store: experiments, models, their metadata, metrics, events, files,
/// checkpoints and the processes attached to experiments.
///
/// Every write is validated against what the store holds (an unknown parent is a
/// `NotFoundError`), stored whole or not at all, and returns only once it is durable.
public protocol RecordStore: Sendable {
    /// Where the records are kept (a file path, a database address), as Health reports it.
    var location: String { get }
    /// The sequence number of the last committed record.
    var lastSequence: Int64 { get }
    /// Writes accepted and not yet committed.
    var pendingWrites: Int { get }
    /// Whether the services may write through it. A store read only (the collector's PostgreSQL,
    /// which records reach by forwarding) refuses writes, and changes its records without the
    /// services seeing them.
    var isWritable: Bool { get }

    // MARK: Objects

    /// The kind of object `id` names ("experiment", "model", "model-version", "checkpoint",
    /// "file"), or nil.
    func objectKind(_ id: String) async throws -> String?

    // MARK: Experiments and metadata

    /// Creates the experiment, or finds the one with the same derived id and changes nothing.
    func createExperiment(_ new: NewExperiment) async throws -> (experiment: Experiment, existed: Bool)
    func experiment(id: String) async throws -> Experiment?
    /// Every experiment, or those of one namespace, oldest first.
    func experiments(namespace: String?) async throws -> [Experiment]
    /// Upserts each key for `parentID`; last write wins per key. Returns the time written.
    func updateMetadata(parentID: String, metadata: Metadata) async throws -> Nanoseconds
    func metadata(parentID: String) async throws -> Metadata

    // MARK: Metrics and events

    /// Appends points to one series (ModelBox's LogMetrics, one point per call).
    func appendMetrics(parentID: String, key: String, columns: MetricColumns) async throws
    /// Queues a batch and returns at once with the promise of its commit: a stream keeps reading
    /// while earlier batches commit, and batches commit in the order they were submitted. With a
    /// chain, a batch whose predecessor in the chain failed is refused without being stored.
    func submitIngest(_ batch: IngestBatch, chain: WriteChain?) async throws -> Pending<Int64>
    /// The parent's series (all, or those named by `keys`), sorted by key, each ordered by step,
    /// then wallclock, then arrival, holding the points within `range` (all when nil); an
    /// experiment also gets the machine's series for the windows trainers were attached to it. A
    /// series with no point in the range is left out.
    func metrics(parentID: String, keys: [String]?, range: MetricRange?) async throws -> [(key: String, columns: MetricColumns)]
    /// The keys `metrics` would answer for the parent, sorted (it may leave out a machine series
    /// with no point inside the attached windows).
    func metricKeys(parentID: String) async throws -> [String]
    func logEvent(_ event: Event) async throws -> Nanoseconds
    /// The parent's events with wallclock at or after `since`, oldest first.
    func events(parentID: String, since: Nanoseconds) async throws -> [Event]

    // MARK: Files, checkpoints and models

    /// Records files (tracked, or uploaded when `blob` is set); all or none.
    func addFiles(_ files: [NewFile]) async throws -> [FileRecord]
    func files(parentID: String) async throws -> [FileRecord]
    func file(id: String) async throws -> FileRecord?
    /// Creates the checkpoint of an experiment at an epoch; a second call for the same epoch
    /// updates it (its metrics replaced, files added, metadata upserted).
    func createCheckpoint(_ new: NewCheckpoint) async throws -> Checkpoint
    func checkpoint(experimentID: String, epoch: UInt64) async throws -> (Checkpoint, [FileRecord])?
    func checkpoints(experimentID: String) async throws -> [(Checkpoint, [FileRecord])]
    /// Creates a model, or finds the one of the same name and namespace and changes nothing.
    func createModel(_ new: NewModel) async throws -> (model: Model, existed: Bool)
    func models(namespace: String) async throws -> [(Model, [FileRecord])]
    /// Creates a version of a model, or updates the one with the same name and version.
    func createModelVersion(_ new: NewModelVersion) async throws -> ModelVersion
    func latestModelVersion(modelID: String) async throws -> (ModelVersion, [FileRecord], Metadata)?

    // MARK: Attachments

    /// Records that trainer process `pid` works for the experiment from now on.
    func attach(experimentID: String, pid: Int32) async throws -> Nanoseconds
    /// Closes the open attachment of `pid` to the experiment.
    func detach(experimentID: String, pid: Int32) async throws -> Nanoseconds
}

extension RecordStore {
    public var isWritable: Bool { true }

    /// Read through every point where a store has no cheaper way.
    public func metricKeys(parentID: String) async throws -> [String] {
        try await metrics(parentID: parentID, keys: nil, range: nil).map(\.key).sorted()
    }

    /// Every series of the parent.
    public func metrics(parentID: String) async throws -> [(key: String, columns: MetricColumns)] {
        try await metrics(parentID: parentID, keys: nil, range: nil)
    }

    /// The parent's series named by `keys` (all when nil), every point.
    public func metrics(parentID: String, keys: [String]?) async throws -> [(key: String, columns: MetricColumns)] {
        try await metrics(parentID: parentID, keys: keys, range: nil)
    }

    /// Every event of the parent.
    public func events(parentID: String) async throws -> [Event] {
        try await events(parentID: parentID, since: .min)
    }

    /// Stores a whole batch: every parent must exist, or nothing of it is stored. Returns the
    /// sequence number of the last record written.
    @discardableResult
    public func ingest(_ batch: IngestBatch) async throws -> Int64 {
        try await submitIngest(batch, chain: nil).value()
    }
}
