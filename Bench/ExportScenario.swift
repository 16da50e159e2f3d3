import BoxcarClient
import Foundation

extension BoxcarBench {
    /// `boxcar export --format csv` of an experiment of `exportPoints` points over 10 keys, to a
    /// file, through the agent and from its database file; the median of `queryRuns` runs each.
    /// The baseline is reading the same points from the store in this process: what the export
    /// adds is the text and the file.
    func export(socketPath: String, databasePath: String?, directory: String) async throws {
        let experimentID = try await AgentClient.with(.unixSocket(socketPath)) { agent in
            let experimentID = try await agent.modelStore.createExperiment(.with {
                $0.name = "export-\(UUID().uuidString)"
                $0.namespace = "bench"
            }).experimentID
            _ = try await agent.log(count: exportPoints / Workload.pointsPerBatch, window: 16) { index in
                Workload.logBatch(experimentID: experimentID, index: index)
            }
            return experimentID
        }
        let points = exportPoints / Workload.pointsPerBatch * Workload.pointsPerBatch
        let output = directory + "/export.csv"
        var sources = [("agent", ["--socket", socketPath])]
        if let databasePath { sources.append(("database", ["--db", databasePath])) }
        var baseline: [Double] = []
        if let databasePath {
            baseline = try await storeReads(databasePath: databasePath, experimentID: experimentID, points: points)
            report(["scenario": "export", "source": "store read", "points": points, "seconds": median(baseline),
                    "rows_per_second": Double(points) / median(baseline), "runs": baseline.count])
        }
        for (name, arguments) in sources {
            var times: [Double] = []
            for _ in 0..<queryRuns {
                let process = Process()
                process.executableURL = URL(filePath: try boxcarBinary())
                process.arguments = ["export", experimentID, "--format", "csv", "--output", output] + arguments
                let started = ContinuousClock.now
                try process.run()
                process.waitUntilExit()
                times.append((ContinuousClock.now - started).seconds)
                guard process.terminationStatus == 0 else { throw BenchError("boxcar export exited with \(process.terminationStatus)") }
            }
            let rows = try String(contentsOfFile: output, encoding: .utf8).utf8.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) } - 1
            guard rows == points else { throw BenchError("the export wrote \(rows) rows of \(points)") }
            var fields: [String: Any] = [
                "scenario": "export", "source": name, "points": points, "seconds": median(times),
                "rows_per_second": Double(points) / median(times), "runs": times.count,
            ]
            if !baseline.isEmpty { fields["ratio_to_store_read"] = median(times) / median(baseline) }
            report(fields)
        }
    }
}
