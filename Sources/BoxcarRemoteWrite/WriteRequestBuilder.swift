import BoxcarAPI
import BoxcarExposition
import BoxcarModel

/// Turns the store's blocks of machine series into one remote-write request: each block's points
/// become samples of the series the exporter's page shows (same name, same labels), with the
/// points' own timestamps, plus the agent's external labels (`--label`, `host=<hostname>` by
/// default) and, for series stored under an experiment, `experiment_id`.
///
/// Series the page leaves out (the rates whose counters it shows) are left out here too, and so
/// are the trainers' process series unless `processes` (`--remote-write-processes`).
struct WriteRequestBuilder {
    /// Sorted by name; a series' own label of the same name wins.
    let externalLabels: [(name: String, value: String)]
    let processes: Bool
    private(set) var request = Prometheus_WriteRequest()
    private(set) var samples = 0
    /// Each stored series' labels as sent (nil: not a series the page shows), kept by the caller
    /// from one request to the next.
    private(set) var seriesCache: [SeriesID: [Prometheus_Label]?]
    /// Each series' place in `request.timeseries`.
    private var index: [SeriesID: Int] = [:]

    struct SeriesID: Hashable {
        var parentID: String
        var key: String
    }

    init(externalLabels: [String: String], processes: Bool = true, series: [SeriesID: [Prometheus_Label]?] = [:]) {
        self.externalLabels = externalLabels.map { (ExpositionWriter.labelName($0.key), $0.value) }.sorted { $0.name < $1.name }
        self.processes = processes
        self.seriesCache = series
    }

    /// A stored series' labels as sent, sorted by name; nil for a key the page does not show.
    func labels(parentID: String, key: String) -> [Prometheus_Label]? {
        guard let parsed = SeriesKey(parsing: key) else { return nil }
        // A trainer's tree totals, not one process: names of their own.
        let tree = parentID != "host" && parsed.name.hasPrefix("process.")
        if parentID != "host" && !processes && (tree || parsed.name == "hw.gpu.process.memory.usage") { return nil }
        guard let entry = tree ? ExpositionNames.treeBySeries[parsed.name] : ExpositionNames.bySeries[parsed.name] else { return nil }
        var labels: [(name: String, value: String)] = [("__name__", entry.family.sampleName)]
        for label in parsed.labels { labels.append((ExpositionWriter.labelName(label.name), label.value)) }
        if parentID != "host" { labels.append(("experiment_id", parentID)) }
        for external in externalLabels where !labels.contains(where: { $0.name == external.name }) { labels.append(external) }
        labels.sort { $0.name < $1.name }
        return labels.map { label in .with { $0.name = label.name; $0.value = label.value } }
    }

    /// Adds a block's points; false when its key is not a series the page shows.
    mutating func add(parentID: String, key: String, block: [UInt8]) throws -> Bool {
        let id = SeriesID(parentID: parentID, key: key)
        let known = seriesCache[id]
        let labels = known ?? labels(parentID: parentID, key: key)
        if known == nil { seriesCache[id] = .some(labels) }
        guard let labels else { return false }
        var columns = MetricColumns()
        try block.withUnsafeBytes { try MetricBlock.decode($0, into: &columns) }
        let position: Int
        if let existing = index[id] {
            position = existing
        } else {
            position = request.timeseries.count
            index[id] = position
            request.timeseries.append(.with { $0.labels = labels })
        }
        for point in 0..<columns.count where columns.nonFloat[point] == nil {
            request.timeseries[position].samples.append(.with {
                $0.value = columns.values[point]
                $0.timestamp = columns.wallclocks[point] / 1_000_000
            })
            samples += 1
        }
        return true
    }
}
