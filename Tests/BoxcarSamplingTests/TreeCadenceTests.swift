@testable import BoxcarSampling
import BoxcarSensors
import BoxcarTestSupport
import Foundation
import Logging
import Testing

/// A trainer's tree past SensorSet.processesPerTick processes is read every ⌈n / 64⌉ ticks, its
/// rates over the whole time since its last read; a small one every tick; a trainer attached or
/// gone is seen at once. Over the large node's fixture (Scripts/fixtures/large-node.py): a tree of
/// 400 processes under PID 4000, ranks 4001 + 49 r of 48 data-loader workers each.
@Suite struct TreeCadenceTests {
    let directory = TemporaryDirectory()
    let logger = Logger(label: "test")
    var proc: String { directory.path + "/proc" }

    init() throws {
        try writeLargeNode(to: directory.path)
    }

    func sensorSet() -> SensorSet {
        SensorSet(
            sensors: [], processes: ProcessTreeSensor(procRoot: proc, clockTicksPerSecond: 100, pageSize: 4096, cpuCount: 192),
            nvidia: nil)
    }

    /// Adds `ticks` of user time to the process's stat (field 14, counted from 1).
    func addUserTime(_ pid: Int32, _ ticks: Int) throws {
        let path = "\(proc)/\(pid)/stat"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let close = try #require(text.lastIndex(of: ")"))
        var fields = text[text.index(close, offsetBy: 2)...].split(separator: " ").map(String.init)
        fields[11] = String(try #require(Int(fields[11])) + ticks)  // field 14 is the 12th after the name
        // In place: the sensor keeps the file open, as it keeps /proc's.
        try (text[...close] + " " + fields.joined(separator: " ")).write(toFile: path, atomically: false, encoding: .utf8)
    }

    func utilization(_ readings: [KeyedReading]?) -> Double? {
        readings?.first { $0.reading.name == "process.cpu.utilization" }?.value
    }

    @Test func aTreeOf400ProcessesIsReadEverySeventhTickWithRatesOverTheSevenSeconds() throws {
        let set = sensorSet()
        let first = set.sample(elapsed: nil, roots: [4000], logger: logger)
        #expect(first.1[4000]?.count ?? 0 > 0)
        #expect(set.lastTrees[4000]?.contains { $0.name == "process.count" && $0.value == 400 } == true)
        try addUserTime(4001, 700)
        for _ in 1..<7 {
            let skipped = set.sample(elapsed: .seconds(1), roots: [4000], logger: logger)
            #expect(skipped.1.isEmpty)
            #expect(skipped.3.isEmpty)  // not gone: only not read
            #expect(set.lastTrees[4000]?.isEmpty == false)  // the page keeps showing the last read
        }
        let seventh = set.sample(elapsed: .seconds(1), roots: [4000], logger: logger)
        // 700 ticks at 100 a second over 7 seconds, of 192 CPUs.
        let share = try #require(utilization(seventh.1[4000]))
        #expect(abs(share - 7.0 / 7 / 192) < 1e-12)
        #expect(set.sample(elapsed: .seconds(1), roots: [4000], logger: logger).1.isEmpty)
    }

    @Test func aSmallTreeIsReadEveryTickAndANewTrainerAtOnce() throws {
        let set = sensorSet()
        // Rank 0: itself and its 48 workers.
        _ = set.sample(elapsed: nil, roots: [4001], logger: logger)
        for _ in 0..<3 {
            let tick = set.sample(elapsed: .seconds(1), roots: [4001], logger: logger)
            #expect(tick.1[4001]?.contains { $0.reading.name == "process.count" && $0.value == 49 } == true)
        }
        // The whole tree attached beside it: read on its first tick, then the pair every eighth
        // (449 processes in all: ⌈449 / 64⌉ = 8).
        let attached = set.sample(elapsed: .seconds(1), roots: [4001, 4000], logger: logger)
        #expect(Set(attached.1.keys) == [4000, 4001])
        #expect(set.sample(elapsed: .seconds(1), roots: [4001, 4000], logger: logger).1.isEmpty)
        // Gone between reads: said at once.
        try FileManager.default.removeItem(atPath: "\(proc)/4001")
        let gone = set.sample(elapsed: .seconds(1), roots: [4001, 4000], logger: logger)
        #expect(gone.3 == [4001])
    }

    /// On the sampler's schedule the ticks are stamped a second apart while the time measured
    /// between reads wanders: the rates of a tree read every seventh tick are over the stamps'
    /// seven seconds exactly, and fall back to the measured time when the stamps disagree.
    @Test func ratesOverSkippedTicksAreTakenOverTheStamps() throws {
        let set = sensorSet()
        set.stampTolerance = 25_000_000
        let second: Int64 = 1_000_000_000
        _ = set.sample(elapsed: nil, stamp: 0, roots: [4000], logger: logger)
        try addUserTime(4001, 700)
        // Woken 3 ms late, then 4 ms early, ...: 7.002 s measured in all, 7 s stamped.
        let jitter: [Int64] = [3, -4, 2, 1, -2, 0, 2]
        var share: Double?
        for (index, late) in jitter.enumerated() {
            let tick = set.sample(
                elapsed: .nanoseconds(second + late * 1_000_000), stamp: Int64(index + 1) * second, roots: [4000], logger: logger)
            share = utilization(tick.1[4000]) ?? share
        }
        #expect(share == 7.0 / 7 / 192)
        // A stamp far from the time measured (a wall clock stepped): the measured time.
        try addUserTime(4001, 700)
        for index in 8...14 {
            let tick = set.sample(elapsed: .seconds(1), stamp: Int64(index) * second + (index == 14 ? 5 * second : 0), roots: [4000], logger: logger)
            share = utilization(tick.1[4000]) ?? share
        }
        #expect(share == 7.0 / 7 / 192)
    }
}
