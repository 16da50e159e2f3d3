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

    /// ModelBox's `LogMetrics`, one point per call, `inFlight` calls outstanding on one connection.
    func ingestUnary(socketPath: String, inFlight: Int) async throws {
        let calls = inFlight == 1 ? max(1, unaryCalls / 4) : unaryCalls
        try await AgentClient.with(.unixSocket(socketPath)) { agent in
            let experimentID = try await agent.modelStore.createExperiment(.with {
                $0.name = "unary-\(inFlight)-\(UUID().uuidString)"
                $0.namespace = "bench"
            }).experimentID
            let started = ContinuousClock.now
            let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
                for worker in 0..<inFlight {
                    group.addTask {
                        var latencies: [Duration] = []
                        var step = worker
                        while step < calls {
                            let begin = ContinuousClock.now
                            _ = try await agent.modelStore.logMetrics(.with {
                                $0.parentID = experimentID
                                $0.key = "loss"
                                $0.value = .with {
                                    $0.step = UInt64(step)
                                    $0.wallclockTime = UInt64(step)
                                    $0.fVal = Float(step)
                                }
                            })
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
            report([
                "scenario": "ingest-unary", "clients": inFlight, "points": calls, "seconds": seconds,
                "calls_per_s": Double(calls) / seconds,
                "p50_us": latencies[latencies.count / 2].seconds * 1e6,
                "p99_us": latencies[min(latencies.count - 1, latencies.count * 99 / 100)].seconds * 1e6,
            ])
        }
    }
}
