import ArgumentParser
import BoxcarModel
import FoundationEssentials

struct ExperimentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiments", abstract: "List experiments, oldest first.",
        discussion: "Example: boxcar experiments --namespace vision --json")

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
        abstract: "Print an experiment's metrics (or any object's: checkpoint, model, `host`).",
        discussion: "Example: boxcar metrics $RUN --key loss --key accuracy")

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
        commandName: "events", abstract: "Print an experiment's events, oldest first.",
        discussion: "Example: boxcar events $RUN --db ~/.local/share/boxcar/boxcar.db")

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
        commandName: "artifacts", abstract: "List an experiment's tracked and uploaded files.",
        discussion: "Example: boxcar artifacts $RUN --json")

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
