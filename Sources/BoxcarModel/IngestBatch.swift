/// Everything one write carries: points of several series, events and metadata, possibly for
/// several parents. It is stored whole or not at all.
public struct IngestBatch: Sendable {
    public struct Series: Sendable {
        public var parentID: String
        public var key: String
        public var columns: MetricColumns

        public init(parentID: String, key: String, columns: MetricColumns) {
            self.parentID = parentID
            self.key = key
            self.columns = columns
        }
    }

    public struct MetadataUpdate: Sendable {
        public var parentID: String
        public var metadata: Metadata

        public init(parentID: String, metadata: Metadata) {
            self.parentID = parentID
            self.metadata = metadata
        }
    }

    public var series: [Series]
    public var events: [Event]
    public var metadata: [MetadataUpdate]
    /// The JSON text of its events' and metadata updates' metadata, in bytes, as validation measured
    /// it: what the budget counts of them (a fixed 512 B or 1 KiB each once let 1.6 GB be held
    /// under a 128 MiB budget).
    public var metadataTextBytes = 0

    public init(series: [Series] = [], events: [Event] = [], metadata: [MetadataUpdate] = []) {
        self.series = series
        self.events = events
        self.metadata = metadata
    }

    public var pointCount: Int { series.reduce(0) { $0 + $1.columns.count } }
}
