import ArgumentParser
import BoxcarAPI
import BoxcarClient
import BoxcarModel
import BoxcarSensors
import BoxcarStorage
import BoxcarStore
import Foundation
import GRPCCore

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

    static func start(
        directory: String, reuse: AgentProcess? = nil, sampleInterval: String = "0", arguments: [String] = []
    ) throws -> AgentProcess {
        let binary = try boxcarBinary()
        let databasePath = reuse?.databasePath ?? directory + "/boxcar.db"
        let socketPath = reuse?.socketPath ?? directory + "/agent.sock"
        let process = Process()
        process.executableURL = URL(filePath: binary)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Sampling off unless asked: the other scenarios measure the API alone.
        process.arguments = [
            "agent", "--db", databasePath, "--socket", socketPath, "--log-level", "error",
            "--sample-interval", sampleInterval,
        ] + arguments
        try process.run()
        // Started once its socket appears. Not connected to: the idle scenario measures an agent
        // no client has touched (a connection alone maps the HTTP/2 code, 4 to 5 MB).
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: socketPath) {
            guard process.isRunning, Date() < deadline else {
                process.terminate()
                throw BenchError("the agent did not start listening on \(socketPath)")
            }
            usleep(20_000)
        }
        return AgentProcess(process: process, databasePath: databasePath, socketPath: socketPath)
    }

    /// Waits until the socket accepts connections: the file appears at bind, before listen, and
    /// a client that comes in between is refused.
    func waitUntilAccepting() throws {
        try waitForListener(process, socketPath: socketPath, seconds: 30, what: "the agent")
    }

    /// `body`'s result; the agent is stopped if it throws, so that no agent outlives the bench.
    func stoppedOnError<R>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await body()
        } catch {
            process.terminate()
            process.waitUntilExit()
            throw error
        }
    }

    func stop() throws {
        process.terminate()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchError("the agent exited with status \(process.terminationStatus)")
        }
    }
}

/// Waits until `process` accepts connections on `socketPath`; stops it and throws if it exits or
/// `seconds` pass first.
func waitForListener(_ process: Process, socketPath: String, seconds: Double, what: String) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !unixSocketAccepts(socketPath) {
        guard process.isRunning, Date() < deadline else {
            process.terminate()
            throw BenchError("\(what) did not start listening on \(socketPath)")
        }
        usleep(20_000)
    }
}

/// Whether something listens on the unix socket at `path`.
func unixSocketAccepts(_ path: String) -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let fits = withUnsafeMutableBytes(of: &address.sun_path) { buffer in
        let bytes = Array(path.utf8)
        guard bytes.count < buffer.count else { return false }
        buffer.copyBytes(from: bytes)
        return true
    }
    guard fits else { return false }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
        }
    }
}

/// `boxcar`, beside this binary.
func boxcarBinary() throws -> String {
    let binary = URL(filePath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent().appending(path: "boxcar").path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw BenchError("boxcar-bench starts the agent at \(binary); build it first (Scripts/build-release.sh)")
    }
    return binary
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

/// The resident set of a process now (VmRSS), in bytes.
func residentBytes(_ pid: Int32) throws -> Int {
    try kilobytes("VmRSS:", in: "/proc/\(pid)/status") * 1024
}

/// The peak resident set of a process (VmHWM), in bytes.
func peakRSS(_ pid: Int32) throws -> Int {
    try kilobytes("VmHWM:", in: "/proc/\(pid)/status") * 1024
}

/// The process's own memory (heap, stacks), whatever the page cache did to its file pages: what
/// the layout of the binary cannot change.
func anonymousBytes(_ pid: Int32) throws -> Int {
    try kilobytes("Anonymous:", in: "/proc/\(pid)/smaps_rollup") * 1024
}

/// The resident pages of the process's own executable (the sum of `Rss` over its mappings in
/// /proc/PID/smaps): of the file pages an idle agent maps, which are its binary's and which the
/// libraries'. Some idle runs peak 2 MB above the others with the same anonymous memory (none of
/// it mapped as whole 2 MB pages: `FilePmdMapped` was 0), and this says whether the binary grew.
func executableResidentBytes(_ pid: Int32) throws -> Int {
    let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
    var inExecutable = false
    var kilobytes = 0
    for line in try String(contentsOfFile: "/proc/\(pid)/smaps", encoding: .utf8).split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if let first = fields.first, first.contains("-"), !first.hasSuffix(":") {
            // A mapping's header: "start-end perms offset dev inode [path]".
            inExecutable = fields.count >= 6 && fields[5...].joined(separator: " ") == executable
        } else if inExecutable, fields.first == "Rss:", fields.count >= 2, let value = Int(fields[1]) {
            kilobytes += value
        }
    }
    return kilobytes * 1024
}

/// The number of the `field` line of a /proc file in kB ("VmHWM:    17112 kB").
private func kilobytes(_ field: String, in path: String) throws -> Int {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
        let value = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
    else { throw BenchError("no \(field) in \(path)") }
    return value
}
