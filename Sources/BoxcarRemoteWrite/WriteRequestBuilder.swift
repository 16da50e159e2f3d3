import BoxcarAPI
import BoxcarExposition
import BoxcarModel

/// Turns the store's blocks of machine series into one remote-write request: each block's points
/// become samples of the series the exporter's page shows (same name, same labels), with the
/// points' own timestamps, plus the agent's external labels (`--label`, `host=<hostname>` by
/// default) and, for series stored under an experiment, `experiment_id`.
///
/// Series the page leaves out (the rates whose counters it shows) are left out here too.
struct WriteRequestBuilder {
    /// Sorted by name; a series' own label of the same name wins.
    let externalLabels: [(name: String, value: String)]
    private(set) var request = Prometheus_WriteRequest()
    private(set) var samples = 0
    /// Each series' place in `request.timeseries`, by its labels.
    private var index: [[String]: Int] = [:]

    init(externalLabels: [String: String]) {
        self.externalLabels = externalLabels.map { (ExpositionWriter.labelName($0.key), $0.value) }.sorted { $0.name < $1.name }
    }

    /// Adds a block's points; false when its key is not a series the page shows.
    mutating func add(parentID: String, key: String, block: [UInt8]) throws -> Bool {
        guard let parsed = SeriesKey(parsing: key), let entry = ExpositionNames.bySeries[parsed.name] else { return false }
        var columns = MetricColumns()
        try block.withUnsafeBytes { try MetricBlock.decode($0, into: &columns) }
        var labels: [(name: String, value: String)] = [("__name__", entry.family.sampleName)]
        for label in parsed.labels { labels.append((ExpositionWriter.labelName(label.name), label.value)) }
        if parentID != "host" { labels.append(("experiment_id", parentID)) }
        for external in externalLabels where !labels.contains(where: { $0.name == external.name }) { labels.append(external) }
        labels.sort { $0.name < $1.name }
        let identity = labels.flatMap { [$0.name, $0.value] }
        let position: Int
        if let known = index[identity] {
            position = known
        } else {
            position = request.timeseries.count
            index[identity] = position
            request.timeseries.append(.with { series in
                series.labels = labels.map { label in .with { $0.name = label.name; $0.value = label.value } }
            })
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
