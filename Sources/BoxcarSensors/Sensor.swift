#if canImport(Glibc)
import Glibc
#endif
import BoxcarModel

// BoxcarSensors: readers of the machine, one sensor a file, as node_exporter has them: /proc and
// /sys under a root directory (a fixture tree in tests), NVML and libudev loaded with dlopen.
// Parsers are pure functions over a file's bytes (Fields.swift); files read every tick stay open
// (OpenFiles.swift). A sensor gives `Reading`s; it knows nothing of storage, schedules or gRPC.

/// A reader of one part of the machine. Called once per tick, from one task at a time.
public protocol Sensor: AnyObject {
    /// Its name in logs and `boxcar doctor`: "cpu", "memory", "nvidia", …
    var name: String { get }
    /// This tick's readings. Counters become rates against the previous tick, `elapsed` apart
    /// on a monotonic clock; the first tick (elapsed nil) has no rates.
    func sample(elapsed: Duration?) throws -> [Reading]
    /// The same, leaving out the counters as they stand (`Reading.isCumulative`) where `counters`
    /// is false: only the exporter's page and remote write read them. By default they are made
    /// all the same (the caller drops them).
    func sample(elapsed: Duration?, counters: Bool) throws -> [Reading]
    /// Sampled every this many ticks: slow sensors (statvfs on network filesystems) less often.
    var cadence: Int { get }
}

extension Sensor {
    public var cadence: Int { 1 }

    public func sample(elapsed: Duration?, counters: Bool) throws -> [Reading] {
        try sample(elapsed: elapsed)
    }
}

/// Every sensor of the machine as a whole (the process tree and GPUs through NVML aside: they
/// need the attached PIDs and a library), reading /proc and /sys under these roots.
/// `loopback`: the loopback interface's series too.
public func hostSensors(procRoot: String, sysRoot: String, loopback: Bool = false) -> [any Sensor] {
    [
        CPUSensor(procRoot: procRoot), MemorySensor(procRoot: procRoot), VMStatSensor(procRoot: procRoot),
        PressureSensor(procRoot: procRoot), FileHandleSensor(procRoot: procRoot),
        CgroupSensor(procRoot: procRoot, sysRoot: sysRoot), NetworkSensor(procRoot: procRoot, sysRoot: sysRoot, includeLoopback: loopback),
        NetstatSensor(procRoot: procRoot),
        InfiniBandSensor(sysRoot: sysRoot),
        DiskSensor(procRoot: procRoot, sysRoot: sysRoot, udev: Udev.forSysRoot(sysRoot)),
        FilesystemSensor(procRoot: procRoot), AMDGPUSensor(sysRoot: sysRoot),
    ]
}

public struct SensorError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A sensor of counters: each tick takes a snapshot, and readings come from it and the one before
/// (rates need two). Snapshots are plain values, so tests build them from two fixture trees.
protocol CounterSensor: Sensor {
    associatedtype Snapshot
    var previous: Snapshot? { get set }
    func snapshot() throws -> Snapshot
    /// `old` is nil on the first tick: only gauges then. `counters`: whether the counters as
    /// they stand are wanted (`Sensor.sample(elapsed:counters:)`).
    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double, counters: Bool) -> [Reading]
}

extension CounterSensor {
    public func sample(elapsed: Duration?) throws -> [Reading] {
        try sample(elapsed: elapsed, counters: true)
    }

    public func sample(elapsed: Duration?, counters: Bool) throws -> [Reading] {
        let current = try snapshot()
        defer { previous = current }
        let seconds = elapsed?.seconds ?? 0
        return readings(from: elapsed == nil ? nil : previous, to: current, seconds: seconds, counters: counters)
    }

    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double) -> [Reading] {
        readings(from: old, to: new, seconds: seconds, counters: true)
    }
}

/// The increase of a counter per second; nil when it went backwards (a reset) or no time passed.
func rate(_ old: UInt64, _ new: UInt64, _ seconds: Double) -> Double? {
    guard new >= old, seconds > 0 else { return nil }
    return Double(new - old) / seconds
}
