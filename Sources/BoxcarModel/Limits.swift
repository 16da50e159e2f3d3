/// Every input has a limit; a request over one is refused whole (INVALID_ARGUMENT or
/// RESOURCE_EXHAUSTED) and stores nothing. The README lists these.
public struct Limits: Sendable, Hashable {
    /// Names, namespaces, owners, tasks, versions, tags, event names and sources (UTF-8 bytes).
    public var maxNameBytes = 256
    /// Metric and metadata keys (UTF-8 bytes).
    public var maxKeyBytes = 256
    /// Descriptions and artifact paths (UTF-8 bytes).
    public var maxTextBytes = 4096
    /// A file checksum (hex digits or whatever the client sends).
    public var maxChecksumBytes = 128
    /// The JSON text of one request's metadata map.
    public var maxMetadataBytes = 256 * 1024
    /// Nesting depth of one metadata value.
    public var maxMetadataDepth = 32
    /// A string metric value, in UTF-8 bytes, or a bytes metric value.
    public var maxMetricValueBytes = 1024 * 1024
    /// Points (of every kind) in one Log batch.
    public var maxBatchPoints = 200_000
    /// Series in one Log batch; and events plus metadata updates in one Log batch.
    public var maxBatchRecords = 10_000
    /// Distinct series (metric keys) of one experiment or other parent: a trainer that logs a
    /// new key per step would otherwise grow the database without end.
    public var maxSeriesPerParent = 50_000
    /// Files in one TrackArtifacts call, checkpoint or model.
    public var maxFilesPerRequest = 10_000
    /// Unique tags of one model version: each is stored with the version, in one row.
    public var maxTagsPerVersion = 1_000
    /// One uploaded file.
    public var maxUploadBytes: Int64 = 16 * 1024 * 1024 * 1024
    /// One gRPC message; uploads stream in chunks below this.
    public var maxMessageBytes = 64 * 1024 * 1024

    public init() {}

    public static let standard = Limits()
}
