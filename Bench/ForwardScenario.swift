import BoxcarAPI
import BoxcarClient
import BoxcarModel
import Foundation

// forward: an agent's backlog drained into a collector on PostgreSQL, against psql's COPY of the
// same points in the same run; then the steady state of a machine's worth of series a second.
extension BoxcarBench {
    func forward(directory: String) async throws {
        let server = try PostgresServer.start(directory: directory + "/pg")
        defer { server.stop() }
        try server.psql("postgres", "CREATE DATABASE bench")
        let collector = try CollectorChild.start(directory: directory + "/collector", postgres: server.url("bench"))
        defer { collector.stop() }

        // The backlog: logged with forwarding off, as an agent holds it after an outage.
        let agentDirectory = directory + "/forward-agent"
        let backlog = try AgentProcess.start(directory: agentDirectory)
        try backlog.waitUntilAccepting()
        let batches = forwardPoints / Workload.pointsPerBatch
        let points = batches * Workload.pointsPerBatch
        let experimentID = try await backlog.stoppedOnError {
            try await AgentClient.with(.unixSocket(backlog.socketPath)) { agent in
                let id = try await agent.modelStore.createExperiment(.with {
                    $0.name = "forward"
                    $0.namespace = "bench"
                }).experimentID
                _ = try await agent.log(count: batches, window: 16) { Workload.logBatch(experimentID: id, index: $0) }
                return id
            }
        }
        try backlog.stop()

        // Drained: from the agent's start with --upstream to the collector's acknowledgement of
        // its last record (each acknowledged only once PostgreSQL committed it).
        let collectorCPU = try processCPUSeconds(collector.process.processIdentifier)
        let started = ContinuousClock.now
        let agent = try AgentProcess.start(
            directory: agentDirectory, reuse: backlog, arguments: ["--upstream", "unix://" + collector.socketPath])
        try agent.waitUntilAccepting()
        try await agent.stoppedOnError { try await waitUntilForwarded(socketPath: agent.socketPath, timeout: .seconds(3600)) }
        let seconds = (ContinuousClock.now - started).seconds
        let agentCPU = try processCPUSeconds(agent.process.processIdentifier)
        let collectorSpent = try processCPUSeconds(collector.process.processIdentifier) - collectorCPU
        try agent.stop()
        let held = try server.psql("bench", "SELECT coalesce(sum(count), 0) FROM boxcar.metric_blocks")
        guard Int(held) == points else { throw BenchError("PostgreSQL holds \(held) points, not \(points)") }
        let bytes = try server.psql(
            "bench", "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('boxcar.metric_blocks')")

        let rowsBaseline = try copyOnePointPerRow(server: server, directory: directory, experimentID: experimentID, batches: batches)
        let blocksBaseline = try copyBlocks(server: server, directory: directory)
        report([
            "scenario": "forward", "clients": 1, "points": points, "seconds": seconds,
            "points_per_s": Double(points) / seconds,
            "baseline_points_per_s": Double(points) / rowsBaseline.seconds,
            "ratio": rowsBaseline.seconds / seconds,
            "blocks_copy_points_per_s": Double(points) / blocksBaseline,
            "blocks_copy_ratio": blocksBaseline / seconds,
            "bytes_per_point": Double(Int(bytes) ?? 0) / Double(points),
            "baseline_bytes_per_point": Double(rowsBaseline.bytes) / Double(points),
            "agent_cpu_ns_per_point": agentCPU / Double(points) * 1e9,
            "collector_cpu_ns_per_point": collectorSpent / Double(points) * 1e9,
        ])
        try await forwardSteadyState(directory: directory, collector: collector)
    }

    /// psql's `\copy` of the same points into a table of one row per point, with the index a
    /// time range of one series needs: the first baseline. The CSV is written first, untimed.
    private func copyOnePointPerRow(
        server: PostgresServer, directory: String, experimentID: String, batches: Int
    ) throws -> (seconds: Double, bytes: Int) {
        let path = directory + "/points.csv"
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw BenchError("cannot write \(path)") }
        let file = try FileHandle(forWritingTo: URL(filePath: path))
        var text = ""
        text.reserveCapacity(1 << 21)
        for index in 0..<batches {
            let batch = Workload.logBatch(experimentID: experimentID, index: index)
            for i in batch.points.key.indices {
                text += "bench,\(experimentID),\(Workload.keys[Int(batch.points.key[i])]),\(batch.points.step[i]),"
                text += timestamp(batch.points.wallclockNs[i])
                text += ",\(batch.points.value[i])\n"
            }
            if text.utf8.count > 1 << 20 {
                file.write(Data(text.utf8))
                text.removeAll(keepingCapacity: true)
            }
        }
        file.write(Data(text.utf8))
        try file.close()
        try server.psql("bench", """
            CREATE TABLE points (host text, parent_id text, key text, step bigint, time timestamptz, value double precision);
            CREATE INDEX points_series ON points (parent_id, key, time)
            """)
        let started = ContinuousClock.now
        try server.psql("bench", "\\copy points FROM '\(path)' WITH (FORMAT csv)")
        let seconds = (ContinuousClock.now - started).seconds
        try? FileManager.default.removeItem(atPath: path)
        let bytes = try server.psql("bench", "SELECT pg_total_relation_size('points')")
        return (seconds, Int(bytes) ?? 0)
    }

    /// `\copy` of the collector's own rows (the blocks it wrote, exported) into a table like its
    /// own, with the same indexes: what the collector's INSERT … unnest is measured against.
    private func copyBlocks(server: PostgresServer, directory: String) throws -> Double {
        let path = directory + "/blocks.csv"
        try server.psql("bench", "\\copy (SELECT * FROM boxcar.metric_blocks) TO '\(path)' WITH (FORMAT csv)")
        try server.psql("bench", "CREATE TABLE blocks_copy (LIKE boxcar.metric_blocks INCLUDING ALL)")
        let started = ContinuousClock.now
        try server.psql("bench", "\\copy blocks_copy FROM '\(path)' WITH (FORMAT csv)")
        let seconds = (ContinuousClock.now - started).seconds
        try? FileManager.default.removeItem(atPath: path)
        return seconds
    }

    /// A machine's worth of series (`steadySeries`, one point each a second) logged for
    /// `steadySeconds`, first with forwarding off, then on: the forwarder's CPU per point is the
    /// difference. Then, forwarding, 10 s more with each second's batch timed from its commit to
    /// the collector's acknowledgement (the lag): apart, as asking Health every few milliseconds
    /// costs the agent more than forwarding does.
    private func forwardSteadyState(directory: String, collector: CollectorChild) async throws {
        var cpu: [Double] = []
        var lags: [Double] = []
        let collectorStart = try processCPUSeconds(collector.process.processIdentifier)
        for forwarding in [false, true] {
            let agent = try AgentProcess.start(
                directory: directory + "/steady-\(forwarding)",
                arguments: forwarding ? ["--upstream", "unix://" + collector.socketPath] : [])
            try agent.waitUntilAccepting()
            try await agent.stoppedOnError { try await AgentClient.with(.unixSocket(agent.socketPath)) { client in
                let id = try await client.modelStore.createExperiment(.with {
                    $0.name = "steady"
                    $0.namespace = "bench"
                }).experimentID
                let keys = (0..<steadySeries).map { "system/bench.series{n=\"\($0)\"}" }
                func tick(_ second: Int) async throws -> Int64 {
                    let acks = try await client.log(count: 1) { _ in
                        var batch = Boxcar_V1_LogBatch()
                        batch.series = keys.map { key in .with { $0.parentID = id; $0.key = key } }
                        batch.points.key = (0..<UInt32(keys.count)).map { $0 }
                        batch.points.step = Array(repeating: UInt64(second), count: keys.count)
                        batch.points.wallclockNs = Array(repeating: WallClock.now(), count: keys.count)
                        batch.points.value = (0..<keys.count).map { Double($0 + second) }
                        return batch
                    }
                    return Int64(acks[0].sequence)
                }
                let before = try processCPUSeconds(agent.process.processIdentifier)
                var start = ContinuousClock.now
                for second in 0..<steadySeconds {
                    _ = try await tick(second)
                    try await Task.sleep(until: start + .seconds(second + 1))
                }
                cpu.append(try processCPUSeconds(agent.process.processIdentifier) - before)
                guard forwarding else { return }
                try await waitUntilForwarded(socketPath: agent.socketPath, timeout: .seconds(60))
                start = ContinuousClock.now
                for second in 0..<10 {
                    let sequence = try await tick(steadySeconds + second)
                    let committed = ContinuousClock.now
                    try await waitUntilForwarded(socketPath: agent.socketPath, through: sequence, timeout: .seconds(60))
                    lags.append((ContinuousClock.now - committed).seconds)
                    try await Task.sleep(until: start + .seconds(second + 1))
                }
            } }
            try agent.stop()
        }
        let points = Double(steadySeries * steadySeconds)
        let collectorSpent = try processCPUSeconds(collector.process.processIdentifier) - collectorStart
        report([
            "scenario": "forward-steady", "clients": 1, "series": steadySeries, "points": Int(points),
            "seconds": steadySeconds,
            "forwarder_cpu_ns_per_point": (cpu[1] - cpu[0]) / points * 1e9,
            "agent_cpu_percent_without": cpu[0] / Double(steadySeconds) * 100,
            "agent_cpu_percent_with": cpu[1] / Double(steadySeconds) * 100,
            "collector_cpu_ns_per_point": collectorSpent / (points + Double(steadySeries * 10)) * 1e9,
            "lag_p50_ms": median(lags) * 1e3,
            "lag_max_ms": (lags.max() ?? 0) * 1e3,
        ])
    }

    /// Polls the agent's Health until its upstream acknowledged `through` (default: every record
    /// committed when asked).
    private func waitUntilForwarded(socketPath: String, through: Int64? = nil, timeout: Duration) async throws {
        try await AgentClient.with(.unixSocket(socketPath)) { client in
            let deadline = ContinuousClock.now + timeout
            var target = through
            while ContinuousClock.now < deadline {
                let health = try await client.agent.health(.init())
                if target == nil { target = Int64(health.lastSequence) }
                if let upstream = health.upstreams.first, Int64(upstream.acknowledgedSeq) >= target! { return }
                try await Task.sleep(for: .milliseconds(through == nil ? 50 : 2))
            }
            throw BenchError("the upstream did not acknowledge seq \(target ?? -1) within \(timeout)")
        }
    }
}

/// `boxcar collector` as a child process on a unix socket.
struct CollectorChild {
    let process: Process
    let socketPath: String

    static func start(directory: String, postgres: String) throws -> CollectorChild {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let socketPath = directory + "/collector.sock"
        let process = Process()
        process.executableURL = URL(filePath: try boxcarBinary())
        process.arguments = [
            "collector", "--postgres", postgres, "--socket", socketPath, "--artifacts", directory + "/artifacts",
            "--log-level", "error",
        ]
        try process.run()
        // Listening once the schema is migrated.
        try waitForListener(process, socketPath: socketPath, seconds: 60, what: "the collector")
        return CollectorChild(process: process, socketPath: socketPath)
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

/// PostgreSQL's text for a time in nanoseconds since the epoch, UTC, to the microsecond (the
/// civil date from days, as in Howard Hinnant's `civil_from_days`).
private func timestamp(_ nanoseconds: Int64) -> String {
    let micros = nanoseconds / 1000
    let seconds = micros / 1_000_000
    let days = seconds / 86_400
    let secondOfDay = seconds % 86_400
    let z = days + 719_468
    let era = z / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
    let fraction = String(micros % 1_000_000)
    return "\(year)-\(two(month))-\(two(day)) \(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):"
        + "\(two(secondOfDay % 60)).\(String(repeating: "0", count: 6 - fraction.count))\(fraction)+00"
}
