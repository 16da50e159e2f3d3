import BoxcarModel
import Testing

@Suite struct MetricColumnsTests {
    @Test func sortsByStepThenWallclockThenArrival() {
        var columns = MetricColumns()
        columns.append(step: 2, wallclock: 10, value: 1)
        columns.append(step: 1, wallclock: 20, value: 2)
        columns.append(step: 1, wallclock: 5, value: 3)
        columns.append(MetricPoint(step: 1, wallclock: 20, value: .string("repeat")))
        columns.sortByStep()
        #expect(columns.steps == [1, 1, 1, 2])
        #expect(columns.wallclocks == [5, 20, 20, 10])
        // The two points at (1, 20) keep the order they arrived in.
        #expect(columns.value(at: 1) == .float(2))
        #expect(columns.value(at: 2) == .string("repeat"))
        #expect(columns.value(at: 3) == .float(1))
    }

    @Test func nonFloatValuesFollowTheirPoints() {
        let points = [
            MetricPoint(step: 0, wallclock: 0, value: .bytes([1, 2])),
            MetricPoint(step: 1, wallclock: 0, value: .float(0.5)),
            MetricPoint(step: 2, wallclock: 0, value: .string("x")),
        ]
        let columns = MetricColumns(points)
        #expect(columns.points == points)
        #expect(columns.selecting([2, 0]).points == [points[2], points[0]])
    }

    @Test func thinningKeepsFirstAndLastEvenlySpaced() {
        var columns = MetricColumns()
        for step in 0..<101 { columns.append(step: UInt64(step), wallclock: 0, value: Double(step)) }
        let thinned = columns.thinned(to: 5)
        #expect(thinned.steps == [0, 25, 50, 75, 100])
        #expect(columns.thinned(to: 500).count == 101)
    }

    @Test func rangeFiltersOnStepOrWallclockInclusively() {
        var columns = MetricColumns()
        for step in 0..<10 { columns.append(step: UInt64(step), wallclock: Int64(100 + step), value: 0) }
        #expect(MetricRange(from: 3, to: 5, axis: .step).filter(columns).steps == [3, 4, 5])
        #expect(MetricRange(from: 108, to: .max, axis: .wallclock).filter(columns).steps == [8, 9])
        // Steps past Int64.max are within an unbounded range, and within none that ends below them.
        columns.append(step: .max, wallclock: 0, value: 0)
        #expect(MetricRange(from: 9, to: .max, axis: .step).filter(columns).steps == [9, .max])
        #expect(MetricRange(from: 9, to: .max - 1, axis: .step).filter(columns).steps == [9])
    }
}
