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
        abstract: "Measure ingest, query and storage of a Boxcar agent.",
        discussion: "Scenarios: \(Scenario.allCases.map(\.rawValue).joined(separator: ", ")). No argument: all.")

    enum Scenario: String, CaseIterable, ExpressibleByArgument {
        case baselineStore = "baseline-store"
        case ingestStream = "ingest-stream"
        case storage
        case ingestUnary = "ingest-unary"
        case query
        case sensors
        case idle
    }

    @Argument(help: "Scenarios to run.")
    var scenarios: [Scenario] = []

    @Option(help: "Use the agent already listening on this socket instead of starting one.")
    var socket: String?

    @Option(help: "Points per client count in ingest-stream.")
    var streamPoints = 5_000_000

    @Option(help: "Calls per in-flight count in ingest-unary.")
    var unaryCalls = 20_000

    @Option(help: "Points in the experiment that query reads.")
    var queryPoints = 1_000_000

    @Option(help: "Repetitions of each query; the median is reported.")
    var queryRuns = 5

    @Option(help: "Ticks timed in the sensors scenario.")
    var sensorTicks = 1000

    @Option(help: "Seconds the idle scenario watches the agent.")
    var idleSeconds = 60

    func run() async throws {
        let chosen = scenarios.isEmpty ? Scenario.allCases : scenarios
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var agent = try socket == nil ? AgentProcess.start(directory: directory) : nil
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
        if chosen.contains(.ingestUnary) {
            for inFlight in [1, 16] {
                try await ingestUnary(socketPath: agent?.socketPath ?? socketPath, inFlight: inFlight)
            }
        }
        if chosen.contains(.query) {
            try await query(socketPath: agent?.socketPath ?? socketPath, databasePath: agent?.databasePath)
        }
        try agent?.stop()
        if chosen.contains(.sensors) {
            try await sensors(directory: directory)
        }
        if chosen.contains(.idle) {
            try await idle(directory: directory)
        }
    }

    // MARK: Scenarios

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
                let store = try Store.openReadOnly(path: databasePath)
                for _ in 0..<queryRuns {
                    let started = ContinuousClock.now
                    let series = try await store.metrics(parentID: experimentID)
                    baselineTimes.append((ContinuousClock.now - started).seconds)
                    guard series.reduce(0, { $0 + $1.columns.count }) == points else {
                        throw BenchError("the store returned the wrong number of points")
                    }
                }
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

    /// CPU time of one full tick: every host sensor, a process tree of 50 processes and 8 GPUs
    /// of the fake NVML library (built beside this binary), over `sensorTicks` ticks.
    func sensors(directory: String) async throws {
        let here = URL(filePath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let fake = here.appending(path: "libFakeNVML.so").path
        guard FileManager.default.fileExists(atPath: fake) else {
            throw BenchError("sensors needs the fake NVML library at \(fake): Scripts/build-release.sh builds it")
        }
        let library = directory + "/libnvidia-ml.so.1"
        try FileManager.default.copyItem(atPath: fake, toPath: library)
        var script = "gpus 8\n"
        for gpu in 0..<8 {
            script += "\(gpu) utilization.gpu 90\n\(gpu) memory.total 150000000000\n\(gpu) memory.used 100000000000\n"
        }
        try script.write(toFile: library + ".script", atomically: true, encoding: .utf8)
        let nvidia = try NVIDIAGPUSensor(library: try NVMLLibrary.load(path: library))
        // The tree: this process and 50 children.
        var children: [Process] = []
        for _ in 0..<50 {
            let child = Process()
            child.executableURL = URL(filePath: "/bin/sleep")
            child.arguments = ["600"]
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()
            children.append(child)
        }
        defer { for child in children { kill(child.processIdentifier, SIGKILL) } }
        let host = hostSensors(procRoot: "/proc", sysRoot: "/sys")
        let tree = ProcessTreeSensor()
        let root = getpid()
        var readings = 0
        func tick(_ tick: Int, _ timed: (String, () -> Int) -> Void) {
            for sensor in host where tick % sensor.cadence == 0 {
                timed(sensor.name) { (try? sensor.sample(elapsed: tick == 0 ? nil : .seconds(1)).count) ?? 0 }
            }
            timed(tree.name) { tree.sample(roots: [root], seconds: tick == 0 ? 0 : 1)[root]?.count ?? 0 }
            timed("nvidia") { nvidia.sample(processes: Set(tree.lastTree[root] ?? [])).count }
        }
        // The whole process's CPU time, sensors' own threads included (statvfs runs on one).
        let started = cpuSeconds()
        let wall = ContinuousClock.now
        for index in 0..<sensorTicks {
            tick(index) { _, body in readings += body() }
        }
        let cpu = cpuSeconds() - started
        let seconds = (ContinuousClock.now - wall).seconds
        // Then each sensor's share, on this thread's CPU clock (the loop never suspends), in a
        // second run: reading the clock around each sensor costs time of its own.
        var spent: [String: Double] = [:]
        for index in sensorTicks..<(2 * sensorTicks) {
            tick(index) { name, body in
                let before = threadCPUSeconds()
                _ = body()
                spent[name, default: 0] += threadCPUSeconds() - before
            }
        }
        let processes = tree.sample(roots: [root], seconds: 1)[root]?.first { $0.name == "process.count" }?.value ?? 0
        let floor = readsOnly(members: tree.lastTree[root] ?? [])
        let perTick = cpu / Double(sensorTicks) * 1e6
        report([
            "scenario": "sensors", "clients": 0, "points": readings, "seconds": seconds,
            "ticks": sensorTicks, "us_per_tick": perTick, "processes": Int(processes), "gpus": 8,
            "us_per_tick_by_sensor": spent.mapValues { ($0 / Double(sensorTicks) * 1e6).rounded() },
            "us_per_tick_reads_only": floor, "ratio_to_reads_only": perTick / floor,
        ])
    }

    /// The baseline of the same run: CPU time per tick of only the kernel's part, the /proc
    /// files a tick reads (the process tree's and the host's), each taken with one bare pread
    /// and the tree's fd/ with one fstat, parsing and storing nothing. This machine is shared:
    /// the ratio to it says more than the microseconds alone.
    func readsOnly(members: [Int32]) -> Double {
        var files = ["stat", "loadavg", "meminfo", "pressure/cpu", "pressure/memory", "pressure/io", "diskstats", "net/dev", "self/cgroup"]
        for pid in members { files += ["\(pid)/stat", "\(pid)/io"] }
        let readable = files.map { open("/proc/" + $0, O_RDONLY | O_CLOEXEC) }.filter { $0 >= 0 }
        let directories = members.map { open("/proc/\($0)/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }.filter { $0 >= 0 }
        defer { for fd in readable + directories { close(fd) } }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var info = stat()
        let started = threadCPUSeconds()
        for _ in 0..<sensorTicks {
            buffer.withUnsafeMutableBytes { raw in
                for fd in readable { _ = pread(fd, raw.baseAddress, raw.count, 0) }
            }
            for fd in directories { _ = fstat(fd, &info) }
        }
        return (threadCPUSeconds() - started) / Double(sensorTicks) * 1e6
    }

    /// The agent sampling every second for `idleSeconds` with no API traffic: its share of one
    /// core and its peak resident memory.
    func idle(directory: String) async throws {
        let agent = try AgentProcess.start(directory: directory + "/idle", sampleInterval: "1")
        let pid = agent.process.processIdentifier
        try await Task.sleep(for: .seconds(2))  // past start-up
        let before = try processCPUSeconds(pid)
        let started = ContinuousClock.now
        try await Task.sleep(for: .seconds(idleSeconds))
        let cpu = try processCPUSeconds(pid) - before
        let seconds = (ContinuousClock.now - started).seconds
        let peak = try peakRSS(pid)
        try agent.stop()
        report([
            "scenario": "idle", "clients": 0, "points": 0, "seconds": seconds,
            "cpu_fraction": cpu / seconds, "peak_rss_bytes": peak,
        ])
    }

    // MARK: Output

    func report(_ fields: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}

/// The benchmark's data: 10 keys, each batch 100 consecutive steps of each, wallclocks 10 ms apart.
enum Workload {
    static let keys = (0..<10).map { "train/metric_\($0)" }
    static let stepsPerBatch = 100
    static var pointsPerBatch: Int { keys.count * stepsPerBatch }
    static let start: Int64 = 1_764_000_000_000_000_000

    static func logBatch(experimentID: String, index: Int) -> Boxcar_V1_LogBatch {
        var batch = Boxcar_V1_LogBatch()
        batch.series = keys.map { key in .with { $0.parentID = experimentID; $0.key = key } }
        var points = Boxcar_V1_FloatColumns()
        points.key.reserveCapacity(pointsPerBatch)
        points.step.reserveCapacity(pointsPerBatch)
        points.wallclockNs.reserveCapacity(pointsPerBatch)
        points.value.reserveCapacity(pointsPerBatch)
        for offset in 0..<stepsPerBatch {
            let step = index * stepsPerBatch + offset
            for key in 0..<keys.count {
                points.key.append(UInt32(key))
                points.step.append(UInt64(step))
                points.wallclockNs.append(start + Int64(step) * 10_000_000)
                points.value.append(1.0 / Double(step + key + 1))
            }
        }
        batch.points = points
        return batch
    }

    static func ingestBatch(experimentID: String, index: Int) -> IngestBatch {
        IngestBatch(series: keys.enumerated().map { keyIndex, key in
            var columns = MetricColumns()
            columns.reserveCapacity(stepsPerBatch)
            for offset in 0..<stepsPerBatch {
                let step = index * stepsPerBatch + offset
                columns.append(step: UInt64(step), wallclock: start + Int64(step) * 10_000_000, value: 1.0 / Double(step + keyIndex + 1))
            }
            return .init(parentID: experimentID, key: key, columns: columns)
        })
    }
}

/// `boxcar agent` as a child process on a temporary directory.
struct AgentProcess {
    let process: Process
    let databasePath: String
    let socketPath: String

    static func start(directory: String, reuse: AgentProcess? = nil, sampleInterval: String = "0") throws -> AgentProcess {
        let binary = URL(filePath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appending(path: "boxcar").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError("boxcar-bench starts the agent at \(binary); build it first (Scripts/build-release.sh)")
        }
        let databasePath = reuse?.databasePath ?? directory + "/boxcar.db"
        let socketPath = reuse?.socketPath ?? directory + "/agent.sock"
        let process = Process()
        process.executableURL = URL(filePath: binary)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Sampling off unless asked: the other scenarios measure the API alone.
        process.arguments = [
            "agent", "--db", databasePath, "--socket", socketPath, "--log-level", "error",
            "--sample-interval", sampleInterval,
        ]
        try process.run()
        // Ready when the socket accepts a call.
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: socketPath) {
            guard process.isRunning, Date() < deadline else {
                throw BenchError("the agent did not start listening on \(socketPath)")
            }
            usleep(20_000)
        }
        return AgentProcess(process: process, databasePath: databasePath, socketPath: socketPath)
    }

    func stop() throws {
        process.terminate()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchError("the agent exited with status \(process.terminationStatus)")
        }
    }
}

func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "boxcar-bench-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func fileSize(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}


struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// CPU time (user + system) this process has used, in seconds.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// CPU time of the calling thread, to the nanosecond.
func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// CPU time of another process, from /proc/PID/stat (utime + stime, clock ticks).
func processCPUSeconds(_ pid: Int32) throws -> Double {
    let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    let fields = stat[stat.range(of: ")", options: .backwards)!.upperBound...].split(separator: " ")
    return (Double(fields[11])! + Double(fields[12])!) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The peak resident set of a process (VmHWM), in bytes.
func peakRSS(_ pid: Int32) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kilobytes = Int(line.split(separator: " ")[1])
    else { throw BenchError("no VmHWM in /proc/\(pid)/status") }
    return kilobytes * 1024
}
