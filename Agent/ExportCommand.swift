import ArgumentParser
import BoxcarModel
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `boxcar export`: an experiment's points as CSV or JSON lines, read a series at a time and each
/// series a page of steps at a time (5 M points read whole and their text held whole took 713 MB;
/// --since and --until's span is found the same way),
/// written a buffer at a time (ExportOutput.swift).
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an experiment's metrics as CSV or JSON lines.",
        discussion: """
            CSV columns: key,step,wallclock,type,value. JSON lines: one object per point with the \
            same fields. type is float, string or bytes (bytes as base64). The run's own metrics \
            by default; --system adds the machine's series of the windows it was attached \
            (system/…). A progress line goes to standard error while an export to a terminal \
            takes more than a second.

            Example: boxcar export $RUN --format csv --key 'loss*' --system --since 2h --output run.csv
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case csv, jsonl }

    @Argument(help: "The experiment id (or another object's).")
    var experiment: String

    @Option(help: "csv or jsonl.")
    var format: Format

    @Option(help: "Write here instead of standard output.")
    var output: String?

    @Option(name: .customLong("key"), help: ArgumentHelp(
        "A key or a pattern of keys (* any run of characters, ? one); repeat for several.", valueName: "PATTERN"))
    var patterns: [String] = []

    @Flag(help: "Also the machine's series of the windows the experiment was attached (system/…).")
    var system = false

    @Option(help: ArgumentHelp(
        "Leave out points before this time: RFC 3339, or a span back from the last point (30s, 10m, 2h, 1d).",
        valueName: "TIME|SPAN"))
    var since: String?

    @Option(help: ArgumentHelp("Leave out points after this time (as --since).", valueName: "TIME|SPAN"))
    var until: String?

    @OptionGroup var source: SourceOptions

    func run() async throws {
        let out = try ExportOutput(path: output)
        let progress = ExportProgress()
        defer { progress.finish() }  // before an error is printed, too
        if format == .csv { out.write(text: "key,step,wallclock,type,value\n") }
        try await source.withSource { source in
            let keys = try await source.metricKeys(parentID: experiment)
            let wanted = keys.filter { key in
                (system || !RunChart.isMachine(key)) && (patterns.isEmpty || patterns.contains { glob($0, matches: key) })
            }
            if wanted.isEmpty && !keys.isEmpty && !patterns.isEmpty {
                let hint = keys.contains(where: RunChart.isMachine) && !system ? " (the machine's series need --system)" : ""
                throw CLIError("no metric of \(experiment) matches \(patterns.joined(separator: " or "))\(hint)")
            }
            let window = try await window(of: wanted, from: source)
            var rows = 0  // of the keys before
            for (index, key) in wanted.enumerated() {
                let writer = RowWriter(key: key, format: format, window: window)
                try await forEachPage(of: key, from: source) { columns in
                    try writer.write(columns, to: out)
                    progress.update(series: index, of: wanted.count, rows: rows + writer.rows)
                }
                rows += writer.rows
            }
        }
        try out.finish()
    }

    /// The wallclocks (ns) to keep: --since and --until, a span counted back from the latest
    /// point of the keys exported (as `plot` counts it; a run may have resumed at a lower step,
    /// so each series is read for its latest time).
    private func window(of keys: [String], from source: any DataSource) async throws -> ClosedRange<Int64> {
        guard since != nil || until != nil else { return .min ... .max }
        var last: Int64?
        let spans = [since, until].contains { $0.map { Int64($0.dropLast()) != nil } ?? false }
        if spans {
            for key in keys {
                try await forEachPage(of: key, from: source) { columns in
                    if let latest = columns.wallclocks.lazy.map(wallclockNanoseconds).max() { last = max(last ?? .min, latest) }
                }
            }
            guard last != nil else { throw CLIError("the keys exported have no point to count --since or --until back from") }
        }
        let lower = try since.map { try RunChart.time($0, last: last ?? 0) } ?? .min
        let upper = try until.map { try RunChart.time($0, last: last ?? 0) } ?? .max
        guard lower <= upper else { throw CLIError("--since is after --until: no point is between them") }
        return lower...upper
    }

    /// About how many points a page holds: a series is read by ranges of steps sized to this, so
    /// that one of millions of points is never held whole.
    static let pagePoints: UInt64 = 250_000

    /// One series' points, page by page in step order, to `body`: each range of steps is sized by
    /// how many points the last one held (steps may be dense or sparse, and change along a run).
    private func forEachPage(
        of key: String, from source: any DataSource, _ body: (MetricColumns) throws -> Void
    ) async throws {
        guard let extent = try await source.stepExtent(parentID: experiment, key: key) else { return }
        var from = extent.lowerBound
        var span = Self.pagePoints
        while true {
            let to = extent.upperBound - from < span ? extent.upperBound : from + span - 1
            var points = 0
            for entry in try await source.metrics(parentID: experiment, keys: [key], steps: from...to) where entry.key == key {
                points += entry.columns.count
                try body(entry.columns)
            }
            guard to < extent.upperBound else { return }
            from = to + 1
            // Twice as wide at most, half as wide at least, toward a page of `pagePoints` (and
            // never so wide that doubling it overflows).
            let wanted = points == 0 ? Double(span) * 2 : Double(span) * Double(Self.pagePoints) / Double(points)
            span = max(1, min(span * 2, max(span / 2, UInt64(min(wanted, 0x1p61)))))
        }
    }
}

/// One series' points as rows. CSV is written byte by byte into the output's buffer (the key's
/// field escaped once, numbers as digits): a String a field cost more than reading the points.
final class RowWriter {
    let key: String
    let format: ExportCommand.Format
    let window: ClosedRange<Int64>
    private(set) var rows = 0
    /// The key's CSV field and the comma after it.
    private let keyField: [UInt8]

    init(key: String, format: ExportCommand.Format, window: ClosedRange<Int64>) {
        self.key = key
        self.format = format
        self.window = window
        keyField = Array((Self.csvField(key) + ",").utf8)
    }

    func write(_ columns: MetricColumns, to out: ExportOutput) throws {
        let everyTime = window == (Int64.min ... Int64.max)
        let allFloat = columns.nonFloat.isEmpty
        // Rows go into a local buffer, handed to the output every few thousand (perf: the
        // output's own buffer, a class's property, paid an exclusivity check a field).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.handOff + 256)
        for index in 0..<columns.count {
            let wallclock = columns.wallclocks[index]
            guard everyTime || window.contains(RunChart.nanoseconds(wallclock)) else { continue }
            rows += 1
            let step = columns.steps[index]
            let other = allFloat ? nil : columns.nonFloat[index]
            switch (format, other) {
            case (.csv, nil):
                bytes += keyField
                Self.appendDecimal(step, to: &bytes)
                bytes.append(UInt8(ascii: ","))
                if wallclock < 0 { bytes.append(UInt8(ascii: "-")) }
                Self.appendDecimal(wallclock.magnitude, to: &bytes)
                bytes += Self.floatField
                bytes += columns.values[index].description.utf8
                bytes.append(UInt8(ascii: "\n"))
            case (.csv, let other?):
                let record = PointRecord(key: key, point: MetricPoint(step: step, wallclock: wallclock, value: other))
                bytes += keyField
                bytes += "\(step),\(wallclock),\(record.type),\(Self.csvField(record.value.plain))\n".utf8
            case (.jsonl, _):
                let value = other ?? .float(columns.values[index])
                bytes += (try encodeJSON(PointRecord(key: key, point: MetricPoint(step: step, wallclock: wallclock, value: value))) + "\n").utf8
            }
            if bytes.count >= Self.handOff {
                out.write(bytes: bytes)
                bytes.removeAll(keepingCapacity: true)
                try out.flushIfFull()
            }
        }
        out.write(bytes: bytes)
        try out.flushIfFull()
    }

    /// Bytes of rows gathered before they go to the output.
    private static let handOff = 64 << 10

    /// A number's decimal digits, written in place without a String between.
    static func appendDecimal(_ value: UInt64, to bytes: inout [UInt8]) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: digits))
        bytes.withUnsafeMutableBufferPointer { buffer in
            var value = value
            var at = start + digits
            repeat {
                at -= 1
                buffer[at] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value > 0
        }
    }

    private static let floatField = Array(",float,".utf8)

    /// RFC 4180: quote a field holding a comma, quote or line break, doubling its quotes.
    static func csvField(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// The export's progress on standard error, where it is a terminal: nothing for the first second,
/// then a line redrawn at most ten times a second, cleared at the end.
final class ExportProgress {
    private let shows = isatty(STDERR_FILENO) == 1
    private let started = ContinuousClock.now
    private var lastDrawn: ContinuousClock.Instant?

    /// At series `done` (from 0) of `total`, `rows` written in all.
    func update(series done: Int, of total: Int, rows: Int) {
        guard shows else { return }
        let now = ContinuousClock.now
        guard now - started >= .seconds(1), lastDrawn.map({ now - $0 >= .milliseconds(100) }) ?? true else { return }
        lastDrawn = now
        let width = 20
        let filled = total == 0 ? width : done * width / total
        let rate = Double(rows) / (now - started).seconds
        let line = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] "
            + "series \(done + 1) of \(total), \(Format.count(Double(rows))) rows, \(Format.count(rate)) rows/s"
        show("\r\u{1B}[K" + line)
    }

    func finish() {
        if lastDrawn != nil { show("\r\u{1B}[K") }
    }

    private func show(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
