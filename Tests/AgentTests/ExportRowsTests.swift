import BoxcarModel
import BoxcarTestSupport
import FoundationEssentials
import Testing

@testable import boxcar

/// The rows `boxcar export` writes, as bytes: numbers at their extremes, a key and a value that
/// need quoting, a string among floats, and a window by time.
@Suite struct ExportRowsTests {
    let directory = TemporaryDirectory()

    func rows(_ columns: MetricColumns, key: String, format: ExportCommand.Format = .csv,
              window: ClosedRange<Int64> = .min ... .max) throws -> String {
        let path = directory.file("out-\(UInt64.random(in: 0 ... .max))")
        let out = try ExportOutput(path: path)
        try RowWriter(key: key, format: format, window: window).write(columns, to: out)
        try out.finish()
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    @Test func numbersAtTheirExtremesAndFieldsThatNeedQuoting() throws {
        var columns = MetricColumns()
        columns.append(step: 0, wallclock: .min, value: -0.5)
        columns.append(step: .max, wallclock: -1, value: 1e-300)
        columns.append(step: 10, wallclock: 9, value: .nan)
        columns.append(MetricPoint(step: 11, wallclock: 1_700_000_000_000_000_000, value: .string("said \"hi\", twice\n")))
        #expect(try rows(columns, key: "loss,val") == """
            "loss,val",0,-9223372036854775808,float,-0.5
            "loss,val",18446744073709551615,-1,float,1e-300
            "loss,val",10,9,float,nan
            "loss,val",11,1700000000000000000,string,"said ""hi"", twice
            "

            """)
    }

    @Test func aWindowKeepsThePointsInsideItWhateverTheirUnit() throws {
        var columns = MetricColumns()
        // Nanoseconds, then seconds as a ModelBox client may send them (2023-11-14T22:13:2xZ).
        columns.append(step: 1, wallclock: 1_700_000_001_000_000_000, value: 1)
        columns.append(step: 2, wallclock: 1_700_000_005_000_000_000, value: 2)
        columns.append(step: 3, wallclock: 1_700_000_003, value: 3)
        let window: ClosedRange<Int64> = 1_700_000_002_000_000_000 ... 1_700_000_006_000_000_000
        #expect(try rows(columns, key: "x", window: window) == "x,2,1700000005000000000,float,2.0\nx,3,1700000003,float,3.0\n")
        let jsonl = try rows(columns, key: "x", format: .jsonl, window: window)
        #expect(jsonl.split(separator: "\n").count == 2 && jsonl.contains(#""step":3"#))
    }

    @Test func manyRowsArriveWholeAcrossHandOffs() throws {
        var columns = MetricColumns()
        for step in 0..<100_000 { columns.append(step: UInt64(step), wallclock: Int64(step), value: Double(step)) }
        let lines = try rows(columns, key: "k").split(separator: "\n")
        #expect(lines.count == 100_000)
        #expect(lines.last == "k,99999,99999,float,99999.0")
    }
}
