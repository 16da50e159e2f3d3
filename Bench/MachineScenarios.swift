import ArgumentParser
import BoxcarAPI
import BoxcarClient
import BoxcarModel
import BoxcarSensors
import BoxcarStorage
import BoxcarStore
import Foundation
import GRPCCore

// The machine side: one sensor tick against bare reads of the same files, and the idle agent.
extension BoxcarBench {
    /// CPU time of one full tick: every host sensor, a process tree of 50 processes and 8 GPUs
    /// of the fake NVML library (built beside this binary), over `sensorTicks` ticks.
    func sensors(directory: String) async throws {
        let nvidia = try NVIDIAGPUSensor(library: try NVMLLibrary.load(path: try fakeNVML(directory: directory, gpus: 8)))
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

    /// A copy of the fake NVML library (built beside this binary) in `directory`, scripted with
    /// `gpus` busy GPUs of 150 GB; its path.
    func fakeNVML(directory: String, gpus: Int) throws -> String {
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
        let anonymous = try anonymousBytes(pid)
        try agent.stop()
        report([
            "scenario": "idle", "clients": 0, "points": 0, "seconds": seconds,
            "cpu_fraction": cpu / seconds, "peak_rss_bytes": peak, "anonymous_bytes": anonymous,
        ])
    }
}
