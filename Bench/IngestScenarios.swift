import ArgumentParser
import BoxcarAPI
import BoxcarClient
import BoxcarModel
import BoxcarSensors
import BoxcarStorage
import BoxcarStore
import Foundation
import GRPCCore

// Ingest: the store alone, the Log stream, and unary LogMetrics calls.
extension BoxcarBench {
    /// The store alone, in this process, fed the same batches as ingest-stream: the ceiling that
    /// gRPC and the agent's decoding take their share from.
    func baselineStore(directory: String) async throws {
        let store = try Store.open(path: directory + "/baseline.db")
        let (experiment, _) = try await store.createExperiment(.init(name: "baseline", namespace: "bench"))
        let batches = streamPoints / Workload.pointsPerBatch
        let started = ContinuousClock.now
        var pending: [Pending<Int64>] = []
        for index in 0..<batches {
            pending.append(try await store.submitIngest(Workload.ingestBatch(experimentID: experiment.id, index: index)))
            if pending.count >= 16 { _ = try await pending.removeFirst().value() }
        }
        for item in pending { _ = try await item.value() }
        let seconds = (ContinuousClock.now - started).seconds
        await store.close()
        let points = batches * Workload.pointsPerBatch
        report([
            "scenario": "baseline-store", "clients": 1, "points": points, "seconds": seconds,
            "points_per_s": Double(points) / seconds,
        ])
    }

    /// `Log` with batches of 1,000 points (10 keys × 100 steps) from `clients` concurrent streams,
    /// each on its own connection, timed to the last acknowledgement.
    func ingestStream(socketPath: String, clients: Int) async throws -> Int {
        let perClient = streamPoints / clients / Workload.pointsPerBatch
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                group.addTask {
                    try await AgentClient.with(.unixSocket(socketPath)) { agent in
                        let experimentID = try await agent.modelStore.createExperiment(.with {
                            $0.name = "stream-\(clients)-\(client)-\(UUID().uuidString)"
                            $0.namespace = "bench"
                        }).experimentID
                        let acks = try await agent.log(count: perClient, window: 16) { index in
                            Workload.logBatch(experimentID: experimentID, index: index)
                        }
                        guard acks.count == perClient else {
                            throw BenchError("expected \(perClient) acknowledgements, got \(acks.count)")
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = (ContinuousClock.now - started).seconds
        let points = perClient * clients * Workload.pointsPerBatch
        report([
            "scenario": "ingest-stream", "clients": clients, "points": points, "seconds": seconds,
            "points_per_s": Double(points) / seconds,
        ])
        return points
    }

    /// ModelBox's unary calls (`LogMetrics` a point a call unless `--unary-method` names others),
    /// with 1 and with 16 calls in flight on one connection: the agent against the bench's own
    /// server that stores nothing (UnaryBaseline), served as grpc-swift serves by default
    /// ("baseline") and as the agent serves, on one event loop ("baseline-loop"), in rounds whose
    /// order turns, medians reported. `agent` nil: the agent at `socketPath` was not started by
    /// the bench, and its CPU is not known.
    func ingestUnary(socketPath: String, agent: Process?, directory: String) async throws {
        var baselines: [Process] = []
        defer {
            for baseline in baselines {
                baseline.terminate()
                baseline.waitUntilExit()
            }
        }
        var servers: [(name: String, socket: String, process: Int32?)] = []
        for (name, onItsLoop) in [("baseline", false), ("baseline-loop", true)] {
            let socket = directory + "/unary-\(name).sock"
            let baseline = Process()
            baseline.executableURL = URL(filePath: "/proc/self/exe").resolvingSymlinksInPath()
            baseline.arguments = ["--serve-unary-baseline", socket] + (onItsLoop ? ["--unary-baseline-on-its-loop"] : [])
            try baseline.run()
            baselines.append(baseline)
            try waitForListener(baseline, socketPath: socket, seconds: 30, what: "the baseline server")
            servers.append((name, socket, baseline.processIdentifier))
        }
        servers.append(("agent", socketPath, agent?.processIdentifier))
        let rounds = 3
        for method in unaryMethod {
            for inFlight in unaryInFlight {
                let calls = max(1, (inFlight == 1 ? unaryCalls / 4 : unaryCalls) / rounds)
                var runs: [String: [UnaryRun]] = [:]
                for round in 0..<rounds {
                    for turn in 0..<servers.count {
                        let server = servers[(round + turn) % servers.count]
                        runs[server.name, default: []].append(try await unaryRun(
                            method, socketPath: server.socket, server: server.process, inFlight: inFlight, calls: calls))
                    }
                }
                let medians = runs.mapValues(UnaryRun.medians)
                for server in servers {
                    let run = medians[server.name]!
                    var fields: [String: Any] = [
                        "scenario": "ingest-unary", "method": method.rawValue, "server": server.name, "clients": inFlight,
                        "calls": calls * rounds,
                        "calls_per_s": run.callsPerSecond, "p50_us": run.p50 * 1e6, "p99_us": run.p99 * 1e6,
                        "client_cpu_us_per_call": run.clientCPUPerCall * 1e6,
                    ]
                    if let cpu = run.cpuPerCall { fields["cpu_us_per_call"] = cpu * 1e6 }
                    if server.name == "agent" {
                        for baseline in ["baseline", "baseline-loop"] {
                            let base = medians[baseline]!
                            let suffix = baseline.replacingOccurrences(of: "-", with: "_")
                            fields["p50_vs_\(suffix)"] = run.p50 / base.p50
                            if let cpu = run.cpuPerCall, let baseCPU = base.cpuPerCall { fields["cpu_vs_\(suffix)"] = cpu / baseCPU }
                        }
                    }
                    report(fields)
                }
            }
        }
    }

    /// `calls` calls of `method` about one new experiment, `inFlight` at a time; the server's CPU
    /// is read from /proc around them when its process is known.
    private func unaryRun(
        _ method: UnaryMethod, socketPath: String, server: Int32?, inFlight: Int, calls: Int
    ) async throws -> UnaryRun {
        try await AgentClient.with(.unixSocket(socketPath), onItsEventLoop: true) { agent in
            let experimentID = try await agent.modelStore.createExperiment(.with {
                $0.name = "unary-\(inFlight)-\(UUID().uuidString)"
                $0.namespace = "bench"
            }).experimentID
            if method == .getMetrics {
                // What GetMetrics reads: a few points of one key.
                for step in 0..<UnaryMethod.pointsRead {
                    _ = try await agent.modelStore.logMetrics(UnaryMethod.logMetrics.point(experimentID, step: step))
                }
            }
            let cpuBefore = try server.map(processCPUSeconds)
            let clientCPUBefore = cpuSeconds()
            let started = ContinuousClock.now
            let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
                for worker in 0..<inFlight {
                    group.addTask {
                        var latencies: [Duration] = []
                        var step = worker
                        while step < calls {
                            let begin = ContinuousClock.now
                            try await method.call(agent.modelStore, experimentID: experimentID, step: step)
                            latencies.append(ContinuousClock.now - begin)
                            step += inFlight
                        }
                        return latencies
                    }
                }
                var all: [Duration] = []
                for try await part in group { all += part }
                return all.sorted()
            }
            let seconds = (ContinuousClock.now - started).seconds
            let cpuAfter = try server.map(processCPUSeconds)
            let clientCPU = cpuSeconds() - clientCPUBefore
            return UnaryRun(
                callsPerSecond: Double(calls) / seconds,
                p50: latencies[latencies.count / 2].seconds,
                p99: latencies[min(latencies.count - 1, latencies.count * 99 / 100)].seconds,
                cpuPerCall: cpuBefore.flatMap { before in cpuAfter.map { ($0 - before) / Double(calls) } },
                clientCPUPerCall: clientCPU / Double(calls))
        }
    }
}

/// One round of ingest-unary against one server: seconds, and the server's and the client's CPU
/// seconds a call.
struct UnaryRun {
    var callsPerSecond: Double
    var p50: Double
    var p99: Double
    var cpuPerCall: Double?
    var clientCPUPerCall: Double

    /// Each figure's median over the rounds.
    static func medians(_ runs: [UnaryRun]) -> UnaryRun {
        UnaryRun(
            callsPerSecond: median(runs.map(\.callsPerSecond)), p50: median(runs.map(\.p50)),
            p99: median(runs.map(\.p99)),
            cpuPerCall: runs.allSatisfy { $0.cpuPerCall != nil } ? median(runs.map { $0.cpuPerCall! }) : nil,
            clientCPUPerCall: median(runs.map(\.clientCPUPerCall)))
    }
}

/// The unary calls ingest-unary can time, each as a ModelBox client makes it.
enum UnaryMethod: String, CaseIterable, ExpressibleByArgument {
    case logMetrics = "log-metrics"
    case logEvent = "log-event"
    case updateMetadata = "update-metadata"
    case createExperiment = "create-experiment"
    case getMetrics = "get-metrics"

    /// The points of the experiment whose GetMetrics is timed.
    static let pointsRead = 10

    func point(_ experimentID: String, step: Int) -> Modelbox_LogMetricsRequest {
        .with {
            $0.parentID = experimentID
            $0.key = "loss"
            $0.value = .with {
                $0.step = UInt64(step)
                $0.wallclockTime = UInt64(step)
                $0.fVal = Float(step)
            }
        }
    }

    func call<Transport: ClientTransport>(
        _ client: Modelbox_ModelStore.Client<Transport>, experimentID: String, step: Int
    ) async throws {
        switch self {
        case .logMetrics:
            _ = try await client.logMetrics(point(experimentID, step: step))
        case .logEvent:
            _ = try await client.logEvent(.with {
                $0.parentID = experimentID
                $0.event = .with {
                    $0.name = "checkpoint"
                    $0.source = .with { $0.name = "trainer" }
                    $0.wallclockTime = .init(seconds: 1_764_000_000 + Int64(step), nanos: 0)
                }
            })
        case .updateMetadata:
            _ = try await client.updateMetadata(.with {
                $0.parentID = experimentID
                $0.metadata = .with { $0.metadata = ["epoch": .init(numberValue: Double(step))] }
            })
        case .createExperiment:
            _ = try await client.createExperiment(.with {
                $0.name = "unary-\(experimentID)-\(step)"
                $0.namespace = "bench"
            })
        case .getMetrics:
            _ = try await client.getMetrics(.with { $0.parentID = experimentID })
        }
    }
}
