import ArgumentParser
import BoxcarAPI
import BoxcarClient
import BoxcarModel
import BoxcarSensors
import BoxcarStorage
import BoxcarStore
import Foundation
import GRPCCore

extension BoxcarBench {
    /// GetMetrics and QueryMetrics for an experiment of `queryPoints` points over 10 keys; the
    /// median of `queryRuns` runs each. The baseline is the same read from the store in this
    /// process (no gRPC), when the bench runs its own agent.
    func query(socketPath: String, databasePath: String?) async throws {
        try await AgentClient.with(.unixSocket(socketPath)) { agent in
            let experimentID = try await agent.modelStore.createExperiment(.with {
                $0.name = "query-\(UUID().uuidString)"
                $0.namespace = "bench"
            }).experimentID
            let batches = queryPoints / Workload.pointsPerBatch
            _ = try await agent.log(count: batches, window: 16) { index in
                Workload.logBatch(experimentID: experimentID, index: index)
            }
            let points = batches * Workload.pointsPerBatch
            var getTimes: [Double] = []
            var queryTimes: [Double] = []
            for _ in 0..<queryRuns {
                var started = ContinuousClock.now
                let metrics = try await agent.modelStore.getMetrics(.with { $0.parentID = experimentID })
                getTimes.append((ContinuousClock.now - started).seconds)
                guard metrics.metrics.reduce(0, { $0 + $1.values.count }) == points else {
                    throw BenchError("GetMetrics returned the wrong number of points")
                }
                started = ContinuousClock.now
                let query = try await agent.agent.queryMetrics(.with { $0.parentID = experimentID })
                queryTimes.append((ContinuousClock.now - started).seconds)
                guard query.series.reduce(0, { $0 + $1.value.count }) == points else {
                    throw BenchError("QueryMetrics returned the wrong number of points")
                }
            }
            var baselineTimes: [Double] = []
            if let databasePath {
                baselineTimes = try await storeReads(databasePath: databasePath, experimentID: experimentID, points: points)
            }
            for (name, times) in [("store", baselineTimes), ("GetMetrics", getTimes), ("QueryMetrics", queryTimes)]
            where !times.isEmpty {
                report([
                    "scenario": "query", "call": name, "clients": 1, "points": points,
                    "seconds": median(times), "runs": times.count,
                ])
            }
        }
    }
}

extension BoxcarBench {
    /// The baseline of the read scenarios: `queryRuns` reads of the experiment's points straight
    /// from the database file, in this process (no gRPC, no text). Each read's seconds.
    func storeReads(databasePath: String, experimentID: String, points: Int) async throws -> [Double] {
        let store = try Store.openReadOnly(path: databasePath)
        var times: [Double] = []
        for _ in 0..<queryRuns {
            let started = ContinuousClock.now
            let series = try await store.metrics(parentID: experimentID)
            times.append((ContinuousClock.now - started).seconds)
            guard series.reduce(0, { $0 + $1.columns.count }) == points else {
                throw BenchError("the store returned the wrong number of points")
            }
        }
        return times
    }
}
