@testable import BoxcarSampling
import BoxcarSensors
import BoxcarTestSupport
import Foundation
import Logging
import Testing

/// An attached trainer's cgroup is read with its tree, and once more after the trainer is gone,
/// from the cgroup it was last in: when the OOM killer kills the trainer itself, the kill counts
/// there, and the sampler makes it an event of the experiment.
@Suite struct TrainerCgroupTests {
    let directory = TemporaryDirectory()
    let logger = Logger(label: "test")

    @Test func aTrainerKilledByTheOOMKillerHasItsCgroupReadOnceMore() throws {
        let proc = directory.path + "/proc"
        let cgroup = directory.path + "/sys/fs/cgroup/job"
        try FileManager.default.copyItem(atPath: fixturesDirectory + "/proc-tree-a", toPath: proc)
        try FileManager.default.createDirectory(atPath: proc + "/self", withIntermediateDirectories: true)
        try "0::/\n".write(toFile: proc + "/self/cgroup", atomically: true, encoding: .utf8)
        try "0::/job\n".write(toFile: proc + "/100/cgroup", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: true)
        try "1048576\n".write(toFile: cgroup + "/memory.current", atomically: true, encoding: .utf8)
        func kills(_ count: Int) throws {
            // In place, as the kernel's file changes (the sensor keeps it open).
            try "oom 1\noom_kill \(count)\n".write(toFile: cgroup + "/memory.events", atomically: false, encoding: .utf8)
        }
        try kills(2)
        let set = SensorSet(
            sensors: [CgroupSensor(procRoot: proc, sysRoot: directory.path + "/sys")],
            processes: ProcessTreeSensor(procRoot: proc, clockTicksPerSecond: 100, pageSize: 4096, cpuCount: 4), nvidia: nil)
        func killed(_ trees: [Int32: [KeyedReading]]) -> Double? {
            trees[100]?.first { $0.reading.name == "container.memory.oom_kills" }?.value
        }
        let (_, alive, _, none) = set.sample(elapsed: nil, roots: [100], logger: logger)
        #expect(killed(alive) == 2 && none.isEmpty)
        // The OOM killer kills the trainer: its cgroup counts the kill, its /proc is gone.
        try kills(3)
        try FileManager.default.removeItem(atPath: proc + "/100")
        let (_, after, _, gone) = set.sample(elapsed: .seconds(1), roots: [100], logger: logger)
        #expect(gone == [100])
        #expect(killed(after) == 3)
        #expect(after[100]?.allSatisfy { $0.reading.name.hasPrefix("container.") } == true)
    }
}
