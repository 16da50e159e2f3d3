@testable import BoxcarCollector
import BoxcarModel
import Testing

/// Series read from several agents come back one a key, keys in order, points by step.
@Suite struct MergedSeriesTests {
    func columns(_ steps: [UInt64]) -> MetricColumns {
        var columns = MetricColumns()
        for step in steps { columns.append(step: step, wallclock: Int64(step), value: Double(step)) }
        return columns
    }

    @Test func twoAgentsOfOneHostGiveOneSeries() {
        let merged = PostgresStore.merged([
            (key: #"system/x{host="a"}"#, columns: columns([0, 2, 4])),
            (key: "loss", columns: columns([1])),
            (key: #"system/x{host="a"}"#, columns: columns([1, 3])),
        ])
        #expect(merged.map(\.key) == ["loss", #"system/x{host="a"}"#])
        #expect(merged[1].columns.steps == [0, 1, 2, 3, 4])
        #expect(merged[1].columns.values == [0, 1, 2, 3, 4])
    }
}
