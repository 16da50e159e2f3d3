import BoxcarModel
import BoxcarStore
import Foundation

// Remote write: how fast the agent drains a backlog of machine points into a real receiver.
extension BoxcarBench {
    /// A backlog of `remoteWritePoints` machine points, stored as the sampler stores them (2,000
    /// series of the page, a head row a tick, none compacted yet), in a database whose remote-write cursor
    /// starts at its beginning; then the agent (sampling off) with `--remote-write` into
    /// VictoriaMetrics (Debian's package, started here) drains it. Points a second from the
    /// agent's start to the last sample counted sent, and the agent's CPU per point.
    func remoteWrite(directory: String) async throws {
        let series = 2_000
        let ticks = max(1, remoteWritePoints / series)
        let agentDirectory = directory + "/remote-write"
        try FileManager.default.createDirectory(atPath: agentDirectory, withIntermediateDirectories: true)
        let vmPort = try freePort()
        let url = "http://127.0.0.1:\(vmPort)/api/v1/write"
        do {
            let store = try Store.open(path: agentDirectory + "/boxcar.db")
            // Ticks a second apart, ending now: within any receiver's window.
            let start = WallClock.now() - Int64(ticks) * 1_000_000_000
            let keys = (0..<series).map { "system/system.cpu.time{cpu.logical_number=\"\($0 / 8)\",cpu.mode=\"s\($0 % 8)\"}" }
            for tick in 0..<ticks {
                let wallclock = start + Int64(tick) * 1_000_000_000
                try await store.appendTick(Store.Tick(
                    parentID: Store.hostID, step: UInt64(wallclock / 1_000_000), wallclock: wallclock, keys: keys,
                    values: (0..<series).map { Double(tick * 100 + $0 % 97) }))
            }
            _ = try await store.cursor("remote_write:" + url)
            try await store.setCursor("remote_write:" + url, to: 0)
            await store.close()
        }
        let points = ticks * series

        let victoria = Process()
        victoria.executableURL = URL(filePath: "/usr/bin/victoria-metrics")
        victoria.arguments = ["-storageDataPath=\(directory)/vm", "-httpListenAddr=127.0.0.1:\(vmPort)", "-retentionPeriod=100y"]
        victoria.standardOutput = FileHandle.nullDevice
        victoria.standardError = FileHandle.nullDevice
        do {
            try victoria.run()
        } catch {
            throw BenchError("remote-write drains into VictoriaMetrics: apt-get install victoria-metrics (\(error))")
        }
        defer {
            victoria.terminate()
            victoria.waitUntilExit()
        }
        let ready = Date().addingTimeInterval(30)
        while (try? httpGet(port: vmPort, path: "/health")) == nil {
            guard victoria.isRunning, Date() < ready else { throw BenchError("VictoriaMetrics did not start") }
            usleep(50_000)
        }

        let httpPort = try freePort()
        let started = ContinuousClock.now
        let agent = try AgentProcess.start(
            directory: agentDirectory, sampleInterval: "0", arguments: ["--remote-write", url, "--http", "127.0.0.1:\(httpPort)"])
        let cpu = try await agent.stoppedOnError {
            let deadline = Date().addingTimeInterval(600)
            while try sentSamples(port: httpPort) < points {
                guard Date() < deadline else { throw BenchError("the backlog was not drained in 10 minutes") }
                try await Task.sleep(for: .milliseconds(20))
            }
            return try processCPUSeconds(agent.process.processIdentifier)
        }
        let seconds = (ContinuousClock.now - started).seconds
        try agent.stop()
        report([
            "scenario": "remote-write", "clients": 1, "points": points, "seconds": seconds,
            "points_per_second": Double(points) / seconds, "agent_cpu_ns_per_point": cpu / Double(points) * 1e9,
        ])
    }

    /// `boxcar_remote_write_samples_total{outcome="sent"}` of the agent's page (0 before it serves).
    func sentSamples(port: Int) throws -> Int {
        guard let page = try? httpGet(port: port) else { return 0 }
        for line in String(decoding: page, as: UTF8.self).split(separator: "\n")
        where line.hasPrefix("boxcar_remote_write_samples_total{outcome=\"sent\"") {
            return Int(Double(line.split(separator: " ").last ?? "") ?? 0)
        }
        return 0
    }
}
