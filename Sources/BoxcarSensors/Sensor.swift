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

/// Every sensor of the machine as a whole (the process tree and GPUs through NVML aside: they
/// need the attached PIDs and a library), reading /proc and /sys under these roots.
public func hostSensors(procRoot: String, sysRoot: String) -> [any Sensor] {
    [
        CPUSensor(procRoot: procRoot), MemorySensor(procRoot: procRoot), PressureSensor(procRoot: procRoot),
        CgroupSensor(procRoot: procRoot, sysRoot: sysRoot), NetworkSensor(procRoot: procRoot, sysRoot: sysRoot),
        InfiniBandSensor(sysRoot: sysRoot),
        DiskSensor(procRoot: procRoot, sysRoot: sysRoot, udev: Udev.forSysRoot(sysRoot)),
        FilesystemSensor(procRoot: procRoot), AMDGPUSensor(sysRoot: sysRoot),
    ]
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

/// Files read every tick, kept open and read again from offset 0 with pread: /proc and /sys
/// files give fresh contents on each read, and keeping them open saves an open and a close per
/// file per tick (opening /proc files was a quarter of a tick's cost). A file that can no longer
/// be read (its process ended) is closed and forgotten. Files are found by a key: their path, or
/// something cheaper to hash where there are many (the process tree's PID and file).
final class OpenFiles<Key: Hashable> {
    private var descriptors: [Key: Int32] = [:]
    private var buffer = [UInt8](repeating: 0, count: 65536)
    /// Keys read since the last `prune`.
    private var used: Set<Key> = []

    deinit {
        for fd in descriptors.values { close(fd) }
    }

    /// The file's contents; `path` is only made when the file is not open yet.
    func read(_ key: Key, path: () -> String) throws -> [UInt8] {
        used.insert(key)
        if let fd = descriptors[key] {
            if let bytes = readAll(fd) { return bytes }
            close(fd)
            descriptors[key] = nil
        }
        let path = path()
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SensorError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard let bytes = readAll(fd) else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw SensorError("cannot read \(path): \(reason)")
        }
        descriptors[key] = fd
        return bytes
    }

    /// Closes the files not read since the last call (processes that left the tree).
    func prune() {
        for (key, fd) in descriptors where !used.contains(key) {
            close(fd)
            descriptors[key] = nil
        }
        used.removeAll(keepingCapacity: true)
    }

    private func readAll(_ fd: Int32) -> [UInt8]? {
        var total = 0
        while true {
            if total == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }
            let count = buffer.withUnsafeMutableBytes { raw in
                pread(fd, raw.baseAddress! + total, raw.count - total, off_t(total))
            }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { return Array(buffer[0..<total]) }
            total += count
        }
    }
}

extension OpenFiles where Key == String {
    func read(_ path: String) throws -> [UInt8] {
        try read(path, path: { path })
    }

    /// A sysfs file's contents without the trailing newline.
    func text(_ path: String) throws -> String {
        String(decoding: try read(path), as: UTF8.self).trimmingCharacters(in: "\n")
    }

    /// A sysfs file holding one number; nil when absent or not a number.
    func number(_ path: String) -> Double? {
        (try? text(path)).flatMap { Double($0) }
    }
}

/// Whitespace-separated fields of each line. Split on the UTF-8 bytes, not on Characters:
/// finding grapheme boundaries was most of the cost of parsing /proc/meminfo and /proc/stat.
func lines(_ bytes: [UInt8]) -> [[Substring]] {
    String(decoding: bytes, as: UTF8.self).utf8.split(separator: UInt8(ascii: "\n")).map { line in
        line.split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }).map { Substring($0) }
    }
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
        let seconds = elapsed?.seconds ?? 0
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

/// The PIDs listed in a /proc directory (its all-digit names), parsed from the directory
/// entries without making a String for each: the process tree lists them every tick.
func processIDs(_ procRoot: String) -> [Int32] {
    guard let directory = opendir(procRoot) else { return [] }
    defer { closedir(directory) }
    var out: [Int32] = []
    while let entry = readdir(directory) {
        let pid = withUnsafeBytes(of: entry.pointee.d_name) { name -> Int32? in
            var value: Int32 = 0
            for byte in name {
                if byte == 0 { break }
                guard byte >= 48 && byte <= 57, value < Int32.max / 10 else { return nil }
                value = value * 10 + Int32(byte - 48)
            }
            return value > 0 ? value : nil
        }
        if let pid { out.append(pid) }
    }
    return out
}

/// The unsigned decimal integers of `bytes[range]`, in order, each field ended by any byte that
/// is not a digit: a hot-path parser for /proc lines that makes no Strings.
func integers(_ bytes: [UInt8], from start: Int = 0, limit: Int = .max) -> [UInt64] {
    var out: [UInt64] = []
    var value: UInt64 = 0
    var inNumber = false
    var index = start
    while index < bytes.count && out.count < limit {
        let byte = bytes[index]
        if byte >= 48 && byte <= 57 {
            value = value &* 10 &+ UInt64(byte - 48)
            inNumber = true
        } else if inNumber {
            out.append(value)
            value = 0
            inNumber = false
        }
        index += 1
    }
    if inNumber && out.count < limit { out.append(value) }
    return out
}

extension Duration {
    /// The duration in seconds, as rates divide by it.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension StringProtocol {
    /// Without `character` at either end.
    func trimmingCharacters(in character: Character) -> String {
        String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
    }
}
