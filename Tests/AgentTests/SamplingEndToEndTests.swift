#if canImport(Glibc)
import Glibc
#endif
import BoxcarAPI
import BoxcarClient
import BoxcarModel
@testable import boxcar
import BoxcarTestSupport
import Foundation
import GRPCCore
import Testing

/// An agent sampling a fixture /proc tree and a fake NVML: an attached experiment's GetMetrics
/// holds the host's series and its process tree's.
@Suite struct SamplingEndToEndTests {
    let directory = TemporaryDirectory()

    static let fixtures = fixturesDirectory

    /// The fake NVML library, copied here with its own script.
    func fakeNVML(script: String) throws -> String {
        let library = directory.file("libnvidia-ml.so.1")
        try FileManager.default.copyItem(atPath: fakeNVMLLibrary, toPath: library)
        try script.write(toFile: library + ".script", atomically: true, encoding: .utf8)
        return library
    }

    /// proc-a's machine files plus the process tree of proc-tree-a, in one /proc.
    func procRoot() throws -> String {
        let root = directory.file("proc")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for tree in ["proc-a", "proc-tree-a"] {
            for entry in try FileManager.default.contentsOfDirectory(atPath: Self.fixtures + "/" + tree) {
                try FileManager.default.copyItem(atPath: Self.fixtures + "/\(tree)/\(entry)", toPath: root + "/" + entry)
            }
        }
        return root
    }

    @Test func anAttachedExperimentGetsHostGPUAndProcessSeries() async throws {
        let library = try fakeNVML(script: "gpus 1\n0 name Fake-GPU\n0 uuid GPU-e2e\n0 utilization.gpu 50\n0 memory.total 1000\n0 memory.used 250\n0 process 101 4096\n0 process 200 8192\n")
        let proc = try procRoot()
        try await withAgent(in: directory, configure: {
            $0.sampleInterval = .milliseconds(100)
            $0.procRoot = proc
            $0.sysRoot = Self.fixtures + "/sys"
            $0.nvmlLibrary = library
        }) { client in
            let store = client.modelStore
            let id = try await store.createExperiment(.with { $0.name = "sampled"; $0.namespace = "n" }).experimentID
            // Let the host gather points before the trainer attaches: those must not show.
            for _ in 0..<100 where (try? await client.metrics(parentID: "host", keys: ["system/system.memory.limit"]).first?.columns.count ?? 0) ?? 0 < 3 {
                try await Task.sleep(for: .milliseconds(50))
            }
            let attachedAt = try await client.agent.attach(.with { $0.experimentID = id; $0.pid = 100 }).attachedAt.nanoseconds
            var metrics: [String: [Float]] = [:]
            let gpu = #"{hw.id="GPU-e2e",hw.model="Fake-GPU",index="0"}"#
            for _ in 0..<100 where (metrics[#"system/process.count{process.pid="100"}"#]?.count ?? 0) < 2 {
                try await Task.sleep(for: .milliseconds(100))
                let response = try await store.getMetrics(.with { $0.parentID = id })
                metrics = Dictionary(uniqueKeysWithValues: response.metrics.map { ($0.key, $0.values.map(\.fVal)) })
            }
            #expect(metrics["system/hw.gpu.utilization" + gpu]?.last == 0.5)
            #expect(metrics["system/hw.gpu.memory.usage" + gpu]?.last == 250)
            #expect(metrics["system/system.memory.limit"]?.last == 25_276_514_304)
            let window = try await store.getMetrics(.with { $0.parentID = id }).metrics
                .first { $0.key == "system/system.memory.limit" }?.values.map { Int64(bitPattern: $0.wallclockTime) } ?? []
            #expect(!window.isEmpty)
            #expect(window.allSatisfy { $0 >= attachedAt })
            #expect(metrics["system/system.cpu.load_average.1m"]?.last == 3.21)
            #expect(metrics[#"system/process.count{process.pid="100"}"#]?.last == 3)
            #expect(metrics[#"system/process.thread.count{process.pid="100"}"#]?.last == 14)
            // GPU memory of a process of the trainer's tree (101, a child of 100) is the
            // experiment's; that of an unrelated process (200) is nobody's.
            #expect(metrics[#"system/hw.gpu.process.memory.usage{hw.id="GPU-e2e",hw.model="Fake-GPU",index="0",process.pid="101"}"#]?.last == 4096)
            #expect(!metrics.keys.contains { $0.contains(#"pid="200""#) })
            // The host keeps its own series whatever is attached.
            let host = try await client.metrics(parentID: "host", keys: ["system/system.memory.limit"])
            #expect(host.first?.columns.values.last == 25_276_514_304)
            // The trainer dies without detaching: the agent closes its window for it, so the
            // experiment stops getting host points while the host goes on.
            let removedAt = WallClock.now()
            try FileManager.default.removeItem(atPath: proc + "/100")
            func lastWallclock(_ parent: String) async throws -> Int64 {
                let series = try await client.metrics(parentID: parent, keys: ["system/system.memory.limit"])
                return series.first?.columns.wallclocks.max() ?? 0
            }
            // Closed once the experiment's last point stands while the host takes three ticks
            // more (attached, it would have had them too); the next tick sees the process gone.
            func hostPassed(_ wallclock: Int64) async throws {
                let deadline = ContinuousClock.now + .seconds(60)
                while try await lastWallclock("host") < wallclock + 300_000_000, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            var closedAt = try await lastWallclock(id)
            for _ in 0..<20 {
                try await hostPassed(closedAt)
                let last = try await lastWallclock(id)
                if last == closedAt { break }
                closedAt = last
            }
            try await hostPassed(closedAt)
            #expect(closedAt >= attachedAt)
            // The tick that saw the process gone closed it: at most one interval (100 ms) after,
            // or that tick's own time when a loaded machine ran it late (TickStamps).
            #expect(closedAt < removedAt + 500_000_000, "closed \(Double(closedAt - removedAt) / 1e9) s after the process went")
            #expect(try await lastWallclock(id) == closedAt)
            #expect(try await lastWallclock("host") >= closedAt + 300_000_000)
            // An experiment never attached sees no machine series.
            let other = try await store.createExperiment(.with { $0.name = "quiet"; $0.namespace = "n" }).experimentID
            #expect(try await store.getMetrics(.with { $0.parentID = other }).metrics.isEmpty)
        }
    }

    /// The OOM killer killing processes of an attached trainer's cgroup is an event of its
    /// experiment, with how many it killed; what it killed before the trainer attached is not.
    @Test func anOOMKillInTheTrainersCgroupIsAnEventOfItsExperiment() async throws {
        let proc = try procRoot()
        try "0::/job\n".write(toFile: proc + "/100/cgroup", atomically: true, encoding: .utf8)
        let sys = directory.file("sys")
        try FileManager.default.copyItem(atPath: Self.fixtures + "/sys", toPath: sys)
        let cgroup = sys + "/fs/cgroup/job"
        try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: true)
        try "1048576\n".write(toFile: cgroup + "/memory.current", atomically: true, encoding: .utf8)
        func events(_ kills: Int) throws {
            // In place, as the kernel's file changes (the agent keeps it open).
            try "low 0\nhigh 0\nmax 3\noom 1\noom_kill \(kills)\n".write(toFile: cgroup + "/memory.events", atomically: false, encoding: .utf8)
        }
        try events(2)
        try await withAgent(in: directory, configure: {
            $0.sampleInterval = .milliseconds(100)
            $0.procRoot = proc
            $0.sysRoot = sys
        }) { client in
            let id = try await client.modelStore.createExperiment(.with { $0.name = "oom"; $0.namespace = "n" }).experimentID
            _ = try await client.agent.attach(.with { $0.experimentID = id; $0.pid = 100 })
            // The cgroup is read (its memory is the experiment's) before the kills rise.
            let usage = #"system/container.memory.usage{process.pid="100"}"#
            for _ in 0..<100 where (try await client.metrics(parentID: id, keys: [usage]).first?.columns.count ?? 0) < 2 {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await client.events(parentID: id).isEmpty)
            try events(5)
            var oom: [Event] = []
            for _ in 0..<100 where oom.isEmpty {
                try await Task.sleep(for: .milliseconds(50))
                oom = try await client.events(parentID: id).filter { $0.name == "memory.oom_kill" }
            }
            #expect(oom.count == 1)
            #expect(oom.first?.metadata["kills"] == .number(3))
            #expect(oom.first?.metadata["pid"] == .number(100))
            #expect(try await client.events(parentID: "host").filter { $0.name == "memory.oom_kill" }.isEmpty)
        }
    }
}
