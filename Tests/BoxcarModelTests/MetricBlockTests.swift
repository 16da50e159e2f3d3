import BoxcarModel
import Testing

@Suite struct MetricBlockTests {
    func roundTrip(_ columns: MetricColumns) throws -> MetricColumns {
        let data = MetricBlock.encode(columns)
        var decoded = MetricColumns()
        try data.withUnsafeBytes { try MetricBlock.decode($0, into: &decoded) }
        return decoded
    }

    @Test func floatsRoundTripBitForBit() throws {
        var columns = MetricColumns()
        let values: [Double] = [0, -0.0, 1.5, .greatestFiniteMagnitude, .leastNonzeroMagnitude, .infinity, -3e-300]
        for (index, value) in values.enumerated() {
            columns.append(step: UInt64(index) * 7, wallclock: 1_700_000_000_000_000_000 + Int64(index) * 1_000_000, value: value)
        }
        let decoded = try roundTrip(columns)
        #expect(decoded.steps == columns.steps)
        #expect(decoded.wallclocks == columns.wallclocks)
        #expect(decoded.values.map(\.bitPattern) == columns.values.map(\.bitPattern))
    }

    @Test func nanKeepsItsBits() throws {
        var columns = MetricColumns()
        columns.append(step: 0, wallclock: 0, value: .nan)
        #expect(try roundTrip(columns).values[0].isNaN)
    }

    @Test func extremeStepsAndWallclocksSurvive() throws {
        var columns = MetricColumns()
        columns.append(step: .max, wallclock: .min, value: 1)
        columns.append(step: 0, wallclock: .max, value: 2)
        columns.append(step: .max, wallclock: -1, value: 3)
        let decoded = try roundTrip(columns)
        #expect(decoded.steps == [.max, 0, .max])
        #expect(decoded.wallclocks == [.min, .max, -1])
    }

    @Test func mixedValueKindsRoundTrip() throws {
        let points = [
            MetricPoint(step: 1, wallclock: 10, value: .float(0.25)),
            MetricPoint(step: 2, wallclock: 11, value: .string("héllo")),
            MetricPoint(step: 3, wallclock: 12, value: .bytes([0, 255, 7])),
            MetricPoint(step: 4, wallclock: 13, value: .string("")),
        ]
        #expect(try roundTrip(MetricColumns(points)).points == points)
    }

    @Test func regularFloatSeriesPacksToThirteenBytesAPoint() {
        // Steps +1 and wallclocks +100 ms pack to 1 and 4 bytes; the value is 8.
        var columns = MetricColumns()
        for step in 0..<1000 {
            columns.append(step: UInt64(step), wallclock: 1_764_000_000_000_000_000 + Int64(step) * 100_000_000, value: Double(step) * 0.5)
        }
        let bytes = MetricBlock.encodePacked(columns).count
        #expect(bytes <= 1000 * 13 + 20)
    }

    @Test func truncatedBlockIsReportedNotCrashing() {
        var columns = MetricColumns()
        columns.append(step: 1, wallclock: 1, value: 1)
        let data = Array(MetricBlock.encode(columns).dropLast(3))
        var decoded = MetricColumns()
        #expect(throws: MetricBlock.CorruptBlock.self) {
            try data.withUnsafeBytes { try MetricBlock.decode($0, into: &decoded) }
        }
    }
}
