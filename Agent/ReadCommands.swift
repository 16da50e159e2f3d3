import ArgumentParser
import BoxcarModel
import FoundationEssentials

struct ExperimentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiments", abstract: "List experiments, oldest first.")

    @Option(help: "Only this namespace.")
    var namespace: String?

    @OptionGroup var source: SourceOptions

    func run() async throws {
        let experiments = try await source.withSource { try await $0.experiments(namespace: namespace) }
        try source.output(experiments.map(ExperimentRecord.init), columns: ["ID", "NAME", "NAMESPACE", "OWNER", "CREATED"]) {
            [$0.id, $0.name, $0.namespace, $0.owner, $0.createdAt]
        }
    }
}

struct MetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print an experiment's metrics (or any object's: checkpoint, model, `host`).")

    @Argument(help: "The experiment id (or another object's).")
    var experiment: String

    @Option(name: .customLong("key"), help: "Only this key; repeat for several.")
    var keys: [String] = []

    @OptionGroup var source: SourceOptions

    func run() async throws {
        let series = try await source.withSource {
            try await $0.metrics(parentID: experiment, keys: keys.isEmpty ? nil : keys)
        }
        let records = series.flatMap { entry in
            entry.columns.points.map { PointRecord(key: entry.key, point: $0) }
        }
        try source.output(records, columns: ["KEY", "STEP", "WALLCLOCK", "VALUE"]) {
            [$0.key, String($0.step), String($0.wallclock), $0.value.plain]
        }
    }
}

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Print an experiment's events, oldest first.")

    @Argument(help: "The experiment id (or another object's).")
    var experiment: String

    @OptionGroup var source: SourceOptions

    func run() async throws {
        let events = try await source.withSource { try await $0.events(parentID: experiment) }
        let records = events.map(EventRecord.init)
        try source.output(records, columns: ["WALLCLOCK", "NAME", "SOURCE", "METADATA"]) {
            [$0.wallclock, $0.name, $0.source, try $0.metadata.jsonText()]
        }
    }
}

struct ArtifactsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "artifacts", abstract: "List an experiment's tracked and uploaded files.")

    @Argument(help: "The experiment id (or another object's).")
    var experiment: String

    @OptionGroup var source: SourceOptions

    func run() async throws {
        let files = try await source.withSource { try await $0.files(parentID: experiment) }
        let records = files.map(FileRecordOutput.init)
        try source.output(records, columns: ["ID", "TYPE", "STORED", "CHECKSUM", "PATH"]) {
            [$0.id, $0.type, $0.size.map { "\($0) bytes" } ?? "tracked", $0.checksum, $0.path]
        }
    }
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an experiment's metrics as CSV or JSON lines.",
        discussion: """
            CSV columns: key,step,wallclock,type,value. JSON lines: one object per point with the
            same fields. type is float, string or bytes (bytes as base64).
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case csv, jsonl }

    @Argument(help: "The experiment id (or another object's).")
    var experiment: String

    @Option(help: "csv or jsonl.")
    var format: Format

    @Option(help: "Write here instead of standard output.")
    var output: String?

    @Option(name: .customLong("key"), help: "Only this key; repeat for several.")
    var keys: [String] = []

    @OptionGroup var source: SourceOptions

    func run() async throws {
        // Read a series at a time and written out a buffer at a time: 5 M points read whole and
        // their text held whole took 713 MB.
        let out = try ExportOutput(path: output)
        if format == .csv { try out.write("key,step,wallclock,type,value\n") }
        try await source.withSource { source in
            let wanted = try await source.metricKeys(parentID: experiment).filter { keys.isEmpty || keys.contains($0) }
            for key in wanted {
                try await export(key, from: source, to: out)
            }
        }
        try out.finish()
    }

    /// About how many points a page holds: a series is read by ranges of steps sized to this, so
    /// that one of millions of points is never held whole.
    static let pagePoints: UInt64 = 250_000

    /// One series, page by page in step order: each range of steps is sized by how many points the
    /// last one held (steps may be dense or sparse, and change along a run).
    private func export(_ key: String, from source: any DataSource, to out: ExportOutput) async throws {
        guard let extent = try await source.stepExtent(parentID: experiment, key: key) else { return }
        var from = extent.lowerBound
        var span = Self.pagePoints
        while true {
            let to = extent.upperBound - from < span ? extent.upperBound : from + span - 1
            var points = 0
            for entry in try await source.metrics(parentID: experiment, keys: [key], steps: from...to) where entry.key == key {
                points += entry.columns.count
                try write(entry, to: out)
            }
            guard to < extent.upperBound else { return }
            from = to + 1
            // Twice as wide at most, half as wide at least, toward a page of `pagePoints` (and
            // never so wide that doubling it overflows).
            let wanted = points == 0 ? Double(span) * 2 : Double(span) * Double(Self.pagePoints) / Double(points)
            span = max(1, min(span * 2, max(span / 2, UInt64(min(wanted, 0x1p61)))))
        }
    }

    private func write(_ entry: (key: String, columns: MetricColumns), to out: ExportOutput) throws {
        for point in entry.columns.points {
            let record = PointRecord(key: entry.key, point: point)
            switch format {
            case .csv:
                try out.write([csvField(record.key), String(record.step), String(record.wallclock), record.type,
                               csvField(record.value.plain)].joined(separator: ",") + "\n")
            case .jsonl:
                try out.write(try encodeJSON(record) + "\n")
            }
        }
    }

    /// RFC 4180: quote a field holding a comma, quote or line break, doubling its quotes.
    func csvField(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
