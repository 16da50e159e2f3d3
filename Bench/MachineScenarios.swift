import ArgumentParser
import BoxcarAPI
import BoxcarClient
import BoxcarModel
import BoxcarSampling
import BoxcarSensors
import BoxcarStorage
import BoxcarStore
import Foundation
import GRPCCore
import Logging

// The machine side: one sensor tick against bare reads of the same files, and the idle agent.
extension BoxcarBench {
    /// CPU time of one full tick: every host sensor, a process tree of 50 processes and 8 GPUs
    /// of the fake NVML library (built beside this binary), over `sensorTicks` ticks. With
    /// `--nvml-library`, the GPUs are that library's: what a real driver's calls cost a tick.
    func sensors(directory: String) async throws {
        // Ticks a second apart, as the agent's: the slow counters every 10th.
        let nvidia = try NVIDIAGPUSensor(
            library: try NVMLLibrary.load(path: try nvmlLibrary ?? fakeNVML(directory: directory, gpus: 8)), slowEvery: 10)
        // The tree: this process and 50 children.
        let children = try sleepers(50)
        defer { for child in children { kill(child.processIdentifier, SIGKILL) } }
        let tree = ProcessTreeSensor()
        let root = getpid()
        let timing = try timeTicks(host: hostSensors(procRoot: "/proc", sysRoot: "/sys"), tree: tree, root: root, nvidia: nvidia)
        let floor = readsOnly(procRoot: "/proc", members: tree.lastTree[root] ?? [])
        report(timing.fields(scenario: "sensors", ticks: sensorTicks).merging([
            "gpus": nvidia.gpus.count, "us_per_tick_reads_only": floor, "ratio_to_reads_only": timing.perTick / floor,
            "us_per_read_by_nvml_metric": costByMetric(nvidia, processes: [root] + children.map(\.processIdentifier)),
        ]) { $1 })
    }

    /// The CPU time of one read of each metric of every GPU (median µs of 30): with a real
    /// driver, which calls are worth reading less often (NVIDIAGPUSensor.slowMetrics).
    func costByMetric(_ nvidia: NVIDIAGPUSensor, processes: [Int32]) -> [String: Double] {
        let processes = Set(processes)  // made once, outside the timing
        var costs: [String: Double] = [:]
        for metric in NVIDIAGPUSensor.Metric.allCases where nvidia.gpus.contains(where: { nvidia.unsupported[$0.index]?[metric] == nil }) {
            let times = (0..<30).map { _ in
                let before = threadCPUSeconds()
                _ = nvidia.sample(processes: processes, part: .only(metric))
                return threadCPUSeconds() - before
            }.sorted()
            costs[metric.rawValue] = (times[times.count / 2] * 1e6).rounded()
        }
        return costs
    }

    /// The same over a large training node's /proc and /sys (Scripts/fixtures/large-node.py:
    /// 192 CPUs, 16 NVMe disks, 8 InfiniBand ports), its counters moved on before each tick, with
    /// 8 GPUs of the fake NVML library (two in MIG mode, 7 instances each) and a trainer tree of
    /// 400 processes. The tree is this process and 399 real children, not the fixture's: reading
    /// a process from a directory of plain files costs another thing than from procfs (no
    /// newest-PID shortcut, fd/ listed instead of sized), and the kernel's part is most of it.
    func sensorsLarge(directory: String) async throws {
        let node = directory + "/large-node"
        try writeLargeNode(to: node)
        let children = try sleepers(399)
        defer { for child in children { kill(child.processIdentifier, SIGKILL) } }
        // A library of its own: the sensors scenario's copy may be loaded already.
        let library = directory + "/large-node-nvml"
        try FileManager.default.createDirectory(atPath: library, withIntermediateDirectories: true)
        let nvidia = try NVIDIAGPUSensor(library: try NVMLLibrary.load(path: try fakeNVML(
            directory: library, gpus: 8, mig: [6, 7], processes: children.prefix(8).map { Int($0.processIdentifier) })),
            slowEvery: 10)
        let tree = ProcessTreeSensor(cpuCount: 192)
        let root = getpid()
        var counters = try LargeNodeCounters(root: node)
        let timing = try timeTicks(
            host: hostSensors(procRoot: node + "/proc", sysRoot: node + "/sys"), tree: tree, root: root, nvidia: nvidia,
            between: { try counters.advance() })
        let floor = readsOnly(procRoot: node + "/proc", members: [])
            + readsOnly(procRoot: "/proc", members: tree.lastTree[root] ?? [], hostFiles: false)
        report(timing.fields(scenario: "sensors-large", ticks: sensorTicks).merging([
            "gpus": 8, "cpus": 192, "us_per_tick_reads_only": floor, "ratio_to_reads_only": timing.perTick / floor,
        ]) { $1 })
    }

    /// `count` children sleeping for ten minutes (killed by the caller when done).
    func sleepers(_ count: Int) throws -> [Process] {
        try (0..<count).map { _ in
            let child = Process()
            child.executableURL = URL(filePath: "/bin/sleep")
            child.arguments = ["600"]
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()
            return child
        }
    }

    /// Runs the generator of the large node's fixture tree (in the source tree beside this file).
    func writeLargeNode(to path: String) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Scripts/fixtures/large-node.py").standardized.path
        let generator = Process()
        generator.executableURL = URL(filePath: "/usr/bin/env")
        generator.arguments = ["python3", script, path]
        generator.standardOutput = FileHandle.nullDevice
        try generator.run()
        generator.waitUntilExit()
        guard generator.terminationStatus == 0 else { throw BenchError("\(script) failed: the large node's fixture tree is needed") }
    }

    struct TickTiming {
        var perTick: Double
        var seconds: Double
        var readings: Int
        /// The distinct series a tick stores (counters' cumulative readings apart), over the
        /// sensors' every cadence; the trees' and the GPUs' apart.
        var series: (host: Int, tree: Int, gpus: Int)
        var processes: Int
        var bySensor: [String: Double]

        func fields(scenario: String, ticks: Int) -> [String: Any] {
            [
                "scenario": scenario, "clients": 0, "points": readings, "seconds": seconds, "ticks": ticks,
                "us_per_tick": perTick, "processes": processes, "us_per_tick_by_sensor": bySensor,
                "series": series.host + series.tree + series.gpus, "series_host": series.host,
                "series_tree": series.tree, "series_gpus": series.gpus,
            ]
        }
    }

    /// CPU time per tick of the whole process over `sensorTicks` ticks of the agent's own sensor
    /// set (SensorSet, as the sampler reads it: each sensor under its hang guard and on its
    /// cadence, the trainer's tree on its own, the readings keyed and checked for the store), and
    /// each sensor's share, from the CPU time the set records of each call on the thread it ran on.
    /// `between` runs before each tick, and its CPU time is not counted, nor the bench's own
    /// tally of the series.
    func timeTicks(
        host: [any Sensor], tree: ProcessTreeSensor, root: Int32, nvidia: NVIDIAGPUSensor, between: () throws -> Void = {}
    ) throws -> TickTiming {
        let set = SensorSet(sensors: host, processes: tree, nvidia: nvidia)
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        var readings = 0
        var keys: (host: Set<String>, tree: Set<String>, gpus: Set<String>) = ([], [], [])
        var excluded = 0.0
        let started = cpuSeconds()
        let wall = ContinuousClock.now
        for index in 0..<sensorTicks {
            var before = threadCPUSeconds()
            try between()
            excluded += threadCPUSeconds() - before
            let (machine, trees, _, _) = set.sample(elapsed: index == 0 ? nil : .seconds(1), roots: [root], logger: logger)
            before = threadCPUSeconds()
            let treeReadings = trees.values.joined()
            readings += machine.count + treeReadings.count
            for keyed in machine {
                if keyed.reading.name.hasPrefix("hw.") { keys.gpus.insert(keyed.key) } else { keys.host.insert(keyed.key) }
            }
            for keyed in treeReadings where !keyed.reading.isCumulative { keys.tree.insert(keyed.key) }
            excluded += threadCPUSeconds() - before
        }
        let cpu = cpuSeconds() - started - excluded
        let seconds = (ContinuousClock.now - wall).seconds
        return TickTiming(
            perTick: cpu / Double(sensorTicks) * 1e6, seconds: seconds, readings: readings,
            series: (keys.host.count, keys.tree.count, keys.gpus.count), processes: tree.lastTree[root]?.count ?? 0,
            bySensor: Dictionary(set.health.map { ($0.key, ($0.value.cpuSeconds / Double(sensorTicks) * 1e6).rounded()) }) { $1 })
    }

    /// The baseline of the same run: CPU time per tick of only the kernel's part, the /proc
    /// files a tick reads (the host's, and the process tree's on the ticks the sensor set reads
    /// it: every ⌈n / SensorSet.processesPerTick⌉; each process's stat and io then, its fd/ at
    /// every ProcessTreeSensor.detailEvery-th of those), each taken with one bare pread and the
    /// tree's fd/ with one fstat, parsing and storing nothing. This machine is shared: the ratio to it
    /// says more than the microseconds alone.
    func readsOnly(procRoot: String, members: [Int32], hostFiles: Bool = true) -> Double {
        let host = hostFiles ? ["stat", "loadavg", "meminfo", "vmstat", "sys/fs/file-nr", "pressure/cpu", "pressure/memory", "pressure/io", "diskstats", "net/dev", "net/snmp", "net/sockstat", "self/cgroup"] : []
        let opened = { (files: [String]) in files.map { open(procRoot + "/" + $0, O_RDONLY | O_CLOEXEC) }.filter { $0 >= 0 } }
        let hostReadable = opened(host)
        let statReadable = opened(members.map { "\($0)/stat" })
        let ioReadable = opened(members.map { "\($0)/io" })
        let directories = members.map { open(procRoot + "/\($0)/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }.filter { $0 >= 0 }
        defer { for fd in hostReadable + statReadable + ioReadable + directories { close(fd) } }
        let treeEvery = max(1, (members.count + SensorSet.processesPerTick - 1) / SensorSet.processesPerTick)
        var buffer = [UInt8](repeating: 0, count: 65536)
        var info = stat()
        let started = threadCPUSeconds()
        let detailEvery = treeEvery * ProcessTreeSensor.detailEvery
        for tick in 0..<sensorTicks {
            let readsTree = tick % treeEvery == 0
            let readsDetail = tick % detailEvery == 0
            let readable = hostReadable + (readsTree ? statReadable + ioReadable : [])
            buffer.withUnsafeMutableBytes { raw in
                for fd in readable { _ = pread(fd, raw.baseAddress, raw.count, 0) }
            }
            if readsDetail {
                for fd in directories { _ = fstat(fd, &info) }
            }
        }
        return (threadCPUSeconds() - started) / Double(sensorTicks) * 1e6
    }

    /// A copy of the fake NVML library (built beside this binary) in `directory`, scripted with
    /// `gpus` busy GPUs of 150 GB, those in `mig` in MIG mode with 7 instances, and a compute
    /// process on each GPU from `processes` in turn; its path.
    func fakeNVML(directory: String, gpus: Int, mig: Set<Int> = [], processes: [Int] = []) throws -> String {
        let here = URL(filePath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let fake = here.appending(path: "libFakeNVML.so").path
        guard FileManager.default.fileExists(atPath: fake) else {
            throw BenchError("the fake NVML library is not at \(fake): Scripts/build-release.sh builds it")
        }
        let library = directory + "/libnvidia-ml.so.1"
        if !FileManager.default.fileExists(atPath: library) { try FileManager.default.copyItem(atPath: fake, toPath: library) }
        var script = "gpus \(gpus)\n"
        for gpu in 0..<gpus {
            script += "\(gpu) utilization.gpu 90\n\(gpu) memory.total 150000000000\n\(gpu) memory.used 100000000000\n"
            if mig.contains(gpu) {
                script += "\(gpu) mig 1\n"
                for slot in 0..<7 { script += "\(gpu) mig.instance \(slot) 9000000000 20000000000\n" }
            }
            if !processes.isEmpty { script += "\(gpu) process \(processes[gpu % processes.count]) 80000000000\n" }
        }
        try script.write(toFile: library + ".script", atomically: true, encoding: .utf8)
        return library
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
        let resident = try residentBytes(pid)
        let anonymous = try anonymousBytes(pid)
        let executable = try executableResidentBytes(pid)
        try agent.stop()
        report([
            "scenario": "idle", "clients": 0, "points": 0, "seconds": seconds,
            "cpu_fraction": cpu / seconds, "peak_rss_bytes": peak, "rss_bytes": resident, "anonymous_bytes": anonymous,
            "executable_rss_bytes": executable,
        ])
    }
}

/// The large node's counters, moved on by a second's worth before each tick as the kernel would
/// move them: each CPU's time (100 jiffies a second, most of it the trainer's), the disks', the
/// interfaces' and the InfiniBand ports' counters. Without it a tick would read the same
/// counters again, and the sensors store no rates. (The process tree sensors-large reads is
/// real.)
struct LargeNodeCounters {
    /// Each file's lines, split at whitespace, and which fields of a line move how much a second.
    private var files: [(path: String, lines: [[Substring]], steps: [[Int: UInt64]])] = []
    private var ticks: UInt64 = 0

    init(root: String) throws {
        func load(_ relative: String, _ step: (Int, [Substring]) -> [Int: UInt64]) throws {
            let path = root + "/" + relative
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
                .map { $0.split(separator: " ", omittingEmptySubsequences: true) }
            files.append((path, lines, lines.enumerated().map { step($0, $1) }))
        }
        // user, nice, system, idle, iowait, irq, softirq: 100 a second on each CPU.
        try load("proc/stat") { index, fields in
            if fields.first == "ctxt" { return [1: 2_000_000] }
            guard fields.first?.hasPrefix("cpu") == true else { return [:] }
            let cpus: UInt64 = fields.first == "cpu" ? 192 : 1
            let user = UInt64(70 + index % 20)
            return [1: user * cpus, 3: 8 * cpus, 4: (100 - user - 10) * cpus, 5: cpus, 7: cpus]
        }
        try load("proc/diskstats") { _, fields in
            guard fields.count > 13, fields[2].hasPrefix("nvme") else { return [:] }
            // reads, sectors read, ms reading, writes, sectors written, ms writing, ms doing I/O, weighted ms.
            return [3: 3_000, 5: 3_000 * 256, 6: 300, 7: 500, 9: 500 * 512, 10: 200, 12: 900, 13: 500]
        }
        try load("proc/net/dev") { index, fields in
            guard index >= 2, fields.count >= 17, fields[0] != "lo:" else { return [:] }
            let bytes: UInt64 = fields[0].hasPrefix("ib") ? 40_000_000_000 : 100_000_000
            return [1: bytes, 2: bytes / 4096, 9: bytes, 10: bytes / 4096]
        }
        for port in 0..<8 {
            for counter in ["port_xmit_data", "port_rcv_data"] {
                // Counted in 4-byte words: 40 GB a second.
                try load("sys/class/infiniband/mlx5_\(port)/ports/1/counters/\(counter)") { _, _ in [0: 10_000_000_000] }
            }
        }
    }

    /// Writes every file with its counters a second further on than the last call.
    mutating func advance() throws {
        ticks += 1
        for (path, lines, steps) in files {
            var text = ""
            for (line, step) in zip(lines, steps) {
                for (index, field) in line.enumerated() {
                    if index > 0 { text += " " }
                    if let by = step[index], let value = UInt64(field) { text += String(value + by * ticks) } else { text += field }
                }
                text += "\n"
            }
            try text.write(toFile: path, atomically: false, encoding: .utf8)
        }
    }
}
