import ArgumentParser
import BoxcarAPI
import BoxcarClient
import BoxcarModel
import BoxcarSensors
import BoxcarStorage
import BoxcarStore
import Foundation
import GRPCCore


/// `boxcar-bench [SCENARIO…]`: measures the agent and prints one JSON line per scenario and
/// client count. Without --socket it starts `boxcar agent` (the binary beside this one) on a
/// temporary directory, so client and agent are separate processes as in production.
@main
struct BoxcarBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boxcar-bench",
        abstract: "Measure ingest, query, storage and forwarding of a Boxcar agent.",
        discussion: "Scenarios: \(Scenario.allCases.map(\.rawValue).joined(separator: ", ")). No argument: all.")

    enum Scenario: String, CaseIterable, ExpressibleByArgument {
        case baselineStore = "baseline-store"
        case ingestStream = "ingest-stream"
        case storage
        case storageHost = "storage-host"
        case ingestUnary = "ingest-unary"
        case query
        case export
        case sensors
        case sensorsLarge = "sensors-large"
        case idle
        case forward
        case scrape
        case remoteWrite = "remote-write"
        case stalled
    }

    @Argument(help: "Scenarios to run.")
    var scenarios: [Scenario] = []

    @Option(help: "Use the agent already listening on this socket instead of starting one.")
    var socket: String?

    @Option(help: "Points per client count in ingest-stream.")
    var streamPoints = 5_000_000

    @Option(help: "Ticks storage-host writes, a second apart.")
    var hostTicks = 100_000

    @Option(help: "The machine's values storage-host replays: keys, then a tab-separated line a tick.")
    var hostTrace = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Traces/host-2core.tsv").path

    @Option(help: "Calls per in-flight count in ingest-unary (a quarter of them with one in flight).")
    var unaryCalls = 20_000

    @Option(help: "Calls in flight in ingest-unary; repeat for several.")
    var unaryInFlight: [Int] = [1, 16]

    @Option(help: "The calls ingest-unary times; repeat for several.")
    var unaryMethod: [UnaryMethod] = [.logMetrics]

    @Option(help: "Points in the experiment that query reads.")
    var queryPoints = 1_000_000

    @Option(help: "Points in the experiment that export writes as CSV.")
    var exportPoints = 2_000_000

    @Option(help: "Repetitions of each query and export; the median is reported.")
    var queryRuns = 5

    @Option(help: "Ticks timed in the sensors scenario.")
    var sensorTicks = 1000

    @Option(help: "The NVML library the sensors scenario reads (a real GPU's libnvidia-ml.so.1) instead of 8 fake GPUs.")
    var nvmlLibrary: String?

    @Option(help: "Seconds the idle scenario watches the agent.")
    var idleSeconds = 60

    @Option(help: "Points in the backlog forward drains into PostgreSQL.")
    var forwardPoints = 10_000_000

    @Option(help: "Series of forward's steady state, one point each a second.")
    var steadySeries = 2_000

    @Option(help: "Seconds of forward's steady state, with forwarding and without.")
    var steadySeconds = 30

    @Option(help: "Machine points in the backlog remote-write drains.")
    var remoteWritePoints = 2_000_000

    @Option(help: "Rounds of scrape; the median round is reported.")
    var scrapeRounds = 11

    @Option(help: "Scrapes in each round of scrape.")
    var scrapesPerRound = 200

    @Option(help: .hidden)
    var serveUnaryBaseline: String?

    @Flag(help: .hidden)
    var unaryBaselineOnItsLoop = false

    func run() async throws {
        if let serveUnaryBaseline {
            return try await UnaryBaseline.serve(socketPath: serveUnaryBaseline, onItsLoop: unaryBaselineOnItsLoop)
        }
        let chosen = scenarios.isEmpty ? Scenario.allCases : scenarios
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var agent = try socket == nil ? AgentProcess.start(directory: directory) : nil
        // Whichever scenario throws, the agent does not outlive the bench (nor keep its output open).
        defer {
            if let agent, agent.process.isRunning {
                agent.process.terminate()
                agent.process.waitUntilExit()
            }
        }
        let socketPath = socket ?? agent!.socketPath

        if chosen.contains(.baselineStore) {
            try await baselineStore(directory: directory)
        }
        var streamed = 0
        if chosen.contains(.ingestStream) || chosen.contains(.storage) {
            for clients in [1, 4] {
                streamed += try await ingestStream(socketPath: socketPath, clients: clients)
            }
        }
        if chosen.contains(.storage) {
            guard let running = agent else {
                throw BenchError("storage needs the bench's own agent (no --socket): it measures its database file")
            }
            // Stopping the agent checkpoints the WAL into the database file.
            try running.stop()
            let bytes = try fileSize(running.databasePath) + ((try? fileSize(running.databasePath + "-wal")) ?? 0)
            report([
                "scenario": "storage", "clients": 0, "points": streamed, "seconds": 0,
                "bytes_per_point": Double(bytes) / Double(streamed),
            ])
            agent = try AgentProcess.start(directory: directory, reuse: running)
        }
        if chosen.contains(.storageHost) {
            try await storageHost(directory: directory)
        }
        if chosen.contains(.ingestUnary) {
            try await ingestUnary(socketPath: agent?.socketPath ?? socketPath, agent: agent?.process, directory: directory)
        }
        if chosen.contains(.query) {
            try await query(socketPath: agent?.socketPath ?? socketPath, databasePath: agent?.databasePath)
        }
        if chosen.contains(.export) {
            try await export(socketPath: agent?.socketPath ?? socketPath, databasePath: agent?.databasePath, directory: directory)
        }
        try agent?.stop()
        if chosen.contains(.sensors) {
            try await sensors(directory: directory)
        }
        if chosen.contains(.sensorsLarge) {
            try await sensorsLarge(directory: directory)
        }
        if chosen.contains(.idle) {
            try await idle(directory: directory)
        }
        if chosen.contains(.forward) {
            try await forward(directory: directory)
        }
        if chosen.contains(.scrape) {
            try await scrape(directory: directory)
        }
        if chosen.contains(.remoteWrite) {
            try await remoteWrite(directory: directory)
        }
        if chosen.contains(.stalled) {
            try await stalled(directory: directory)
        }
    }

    // MARK: Output

    func report(_ fields: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}
