#if canImport(Glibc)
import Glibc
#endif

/// A reader of one part of the machine. Called once per tick, from one task at a time.
public protocol Sensor: AnyObject {
    /// Its name in logs and `boxcar doctor`: "cpu", "memory", "nvidia", …
    var name: String { get }
    /// This tick's readings. Counters become rates against the previous tick, `elapsed` apart
    /// on a monotonic clock; the first tick (elapsed nil) has no rates.
    func sample(elapsed: Duration?) throws -> [Reading]
    /// Sampled every this many ticks: slow sensors (statvfs on network filesystems) less often.
    var cadence: Int { get }
}

extension Sensor {
    public var cadence: Int { 1 }
}

public struct SensorError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A whole small file (under /proc or /sys) as bytes, or an error naming it.
func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SensorError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16384)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { throw SensorError("cannot read \(path): \(String(cString: strerror(errno)))") }
        if count == 0 { return out }
        out.append(contentsOf: buffer[0..<count])
    }
}

/// Whitespace-separated fields of each line.
func lines(_ bytes: [UInt8]) -> [[Substring]] {
    String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }) }
}

/// A sensor of counters: each tick takes a snapshot, and readings come from it and the one before
/// (rates need two). Snapshots are plain values, so tests build them from two fixture trees.
protocol CounterSensor: Sensor {
    associatedtype Snapshot
    var previous: Snapshot? { get set }
    func snapshot() throws -> Snapshot
    /// `old` is nil on the first tick: only gauges then.
    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double) -> [Reading]
}

extension CounterSensor {
    public func sample(elapsed: Duration?) throws -> [Reading] {
        let current = try snapshot()
        defer { previous = current }
        let seconds = elapsed.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 } ?? 0
        return readings(from: elapsed == nil ? nil : previous, to: current, seconds: seconds)
    }
}

/// The increase of a counter per second; nil when it went backwards (a reset) or no time passed.
func rate(_ old: UInt64, _ new: UInt64, _ seconds: Double) -> Double? {
    guard new >= old, seconds > 0 else { return nil }
    return Double(new - old) / seconds
}

func exists(_ path: String) -> Bool {
    access(path, F_OK) == 0
}

/// The names in a directory, "." and ".." aside; empty when it cannot be read.
func directoryEntries(_ path: String) -> [String] {
    guard let directory = opendir(path) else { return [] }
    defer { closedir(directory) }
    var out: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        if name != "." && name != ".." { out.append(name) }
    }
    return out
}
