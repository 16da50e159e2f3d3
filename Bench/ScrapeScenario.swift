import BoxcarAPI
import BoxcarClient
import BoxcarExposition
import BoxcarSampling
import BoxcarSensors
import Foundation

// The exporter: what a scrape of /metrics costs the agent, beside node_exporter's in the same run.
extension BoxcarBench {
    /// The agent sampling every second with 8 GPUs of the fake NVML library and a trainer of 51
    /// processes (this one and 50 children) attached; node_exporter (Debian's
    /// prometheus-node-exporter) with its default collectors. Each is scraped `scrapeRounds` ×
    /// `scrapesPerRound` times over one kept-alive connection a round, without gzip, and its process's CPU time
    /// per scrape is the median of the rounds. The agent writes the machine's part of its page
    /// once a tick (the first scrape after it): that cost is timed apart, in this process, over
    /// a snapshot of the same machine.
    func scrape(directory: String) async throws {
        let library = try fakeNVML(directory: directory, gpus: 8)
        var children: [Process] = []
        for _ in 0..<50 {
            let child = Process()
            child.executableURL = URL(filePath: "/bin/sleep")
            child.arguments = ["600"]
            try child.run()
            children.append(child)
        }
        defer { for child in children { kill(child.processIdentifier, SIGKILL) } }

        let port = try freePort()
        let agent = try AgentProcess.start(
            directory: directory + "/scrape", sampleInterval: "1",
            arguments: ["--http", "127.0.0.1:\(port)", "--nvml-library", library])
        let (agentCPU, agentBytes) = try await agent.stoppedOnError {
            try agent.waitUntilAccepting()
            try await AgentClient.with(.unixSocket(agent.socketPath)) { client in
                let experiment = try await client.modelStore.createExperiment(.with {
                    $0.name = "scrape"
                    $0.namespace = "bench"
                })
                _ = try await client.agent.attach(.with {
                    $0.experimentID = experiment.experimentID
                    $0.pid = getpid()
                })
            }
            // Two ticks past the attach: the tree and its rates are on the page.
            let deadline = Date().addingTimeInterval(30)
            while !(try pageHasTree(port: port)) {
                guard Date() < deadline else { throw BenchError("the agent's page never showed the attached tree") }
                try await Task.sleep(for: .milliseconds(200))
            }
            return try measureScrapes(pid: agent.process.processIdentifier, port: port)
        }
        try agent.stop()

        let render = try renderTime(library: library)

        let exporterPort = try freePort()
        let exporter = Process()
        exporter.executableURL = URL(filePath: "/usr/bin/prometheus-node-exporter")
        exporter.arguments = ["--web.listen-address=127.0.0.1:\(exporterPort)"]
        exporter.standardOutput = FileHandle.nullDevice
        exporter.standardError = FileHandle.nullDevice
        do {
            try exporter.run()
        } catch {
            throw BenchError("scrape compares with node_exporter: apt-get install prometheus-node-exporter (\(error))")
        }
        defer {
            exporter.terminate()
            exporter.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(30)
        while (try? httpGet(port: exporterPort)) == nil {
            guard exporter.isRunning, Date() < deadline else { throw BenchError("node_exporter did not start") }
            usleep(50_000)
        }
        let (exporterCPU, exporterBytes) = try measureScrapes(pid: exporter.processIdentifier, port: exporterPort)
        report([
            "scenario": "scrape", "clients": 1, "points": 0, "seconds": 0,
            "agent_cpu_us_per_scrape": agentCPU * 1e6, "agent_page_write_us": render.seconds * 1e6,
            "agent_cpu_us_per_first_scrape_after_a_tick": (agentCPU + render.seconds) * 1e6,
            "agent_page_bytes": agentBytes, "agent_samples": render.samples,
            "node_exporter_cpu_us_per_scrape": exporterCPU * 1e6, "node_exporter_page_bytes": exporterBytes,
            "ratio_first_scrape_to_node_exporter": (agentCPU + render.seconds) / exporterCPU,
        ])
    }

    /// Median CPU seconds of the process per scrape over the rounds, and the page's bytes. Each
    /// round keeps one connection open, as Prometheus does between scrapes.
    func measureScrapes(pid: Int32, port: Int) throws -> (Double, Int) {
        var perScrape: [Double] = []
        var bytes = 0
        for _ in 0..<scrapeRounds {
            let connection = try HTTPConnection(port: port)
            let before = try processCPUSeconds(pid)
            for _ in 0..<scrapesPerRound { bytes = try connection.get("/metrics").count }
            perScrape.append((try processCPUSeconds(pid) - before) / Double(scrapesPerRound))
        }
        return (median(perScrape), bytes)
    }

    func pageHasTree(port: Int) throws -> Bool {
        let page = String(decoding: try httpGet(port: port), as: UTF8.self)
        return page.components(separatedBy: "process_threads{").count > 50 && page.contains("hw_gpu_utilization_ratio")
    }

    /// Writing the machine's part of the page, timed in this process over a snapshot of this
    /// machine, 8 fake GPUs and this process's tree: the median of 200 writes.
    func renderTime(library: String) throws -> (seconds: Double, samples: Int) {
        let nvidia = try NVIDIAGPUSensor(library: try NVMLLibrary.load(path: library))
        let tree = ProcessTreeSensor()
        var readings: [Reading] = []
        for sensor in hostSensors(procRoot: "/proc", sysRoot: "/sys") {
            _ = try? sensor.sample(elapsed: nil)
            readings += (try? sensor.sample(elapsed: .seconds(1))) ?? []
        }
        _ = tree.sample(roots: [getpid()], seconds: 0)
        let trainer = tree.sample(roots: [getpid()], seconds: 1)[getpid()] ?? []
        readings += nvidia.sample(processes: Set(tree.lastTree[getpid()] ?? []))
        let snapshot = MachineSnapshot(
            wallclock: 1, host: readings,
            trainers: [.init(experimentID: "bench", pid: getpid(), processes: tree.lastProcesses[getpid()] ?? [], readings: trainer)],
            sensors: [])
        var times: [Double] = []
        var samples = 0
        for _ in 0..<200 {
            let started = threadCPUSeconds()
            var writer = ExpositionWriter(format: .prometheusText)
            MachinePage.write(snapshot, into: &writer)
            let page = writer.finish()
            times.append(threadCPUSeconds() - started)
            samples = page.split(separator: UInt8(ascii: "\n")).filter { $0.first != UInt8(ascii: "#") }.count
        }
        return (median(times), samples)
    }
}

/// A kept-alive HTTP/1.1 connection to 127.0.0.1:`port`: bodies by Content-Length or chunked.
final class HTTPConnection {
    let fd: Int32
    private var buffered: [UInt8] = []

    init(port: Int) throws {
        fd = try connectLoopback(port: port)
    }

    deinit { close(fd) }

    func get(_ path: String) throws -> [UInt8] {
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { throw BenchError("write: \(errno)") }
        let head = String(decoding: try readUntil(Array("\r\n\r\n".utf8)), as: UTF8.self).lowercased()
        guard head.hasPrefix("http/1.1 200") else { throw BenchError("not 200: \(head.prefix(100))") }
        if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
            let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
        {
            return try read(length)
        }
        guard head.contains("transfer-encoding: chunked") else { throw BenchError("neither a length nor chunks") }
        var body: [UInt8] = []
        while true {
            let sizeLine = String(decoding: try readUntil(Array("\r\n".utf8)), as: UTF8.self)
            guard let size = Int(sizeLine.split(separator: ";")[0].trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw BenchError("bad chunk size \(sizeLine)")
            }
            body += try read(size)
            _ = try read(2)
            if size == 0 { return body }
        }
    }

    /// Bytes up to and without `end`, which is consumed.
    private func readUntil(_ end: [UInt8]) throws -> [UInt8] {
        while true {
            if let range = buffered.firstRange(of: end) {
                let out = Array(buffered[..<range.lowerBound])
                buffered.removeSubrange(..<range.upperBound)
                return out
            }
            try fill()
        }
    }

    private func read(_ count: Int) throws -> [UInt8] {
        while buffered.count < count { try fill() }
        let out = Array(buffered[..<count])
        buffered.removeSubrange(..<count)
        return out
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let count = Glibc.read(fd, &chunk, chunk.count)
        guard count > 0 else { throw BenchError("the connection closed") }
        buffered += chunk[..<count]
    }
}

func connectLoopback(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw BenchError("socket: \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw BenchError("connect to port \(port): \(errno)")
    }
    return fd
}

/// GET `path` on 127.0.0.1:`port` over a connection of its own; the body.
func httpGet(port: Int, path: String = "/metrics") throws -> [UInt8] {
    try HTTPConnection(port: port).get(path)
}
