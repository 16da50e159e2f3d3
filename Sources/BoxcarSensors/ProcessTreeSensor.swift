#if canImport(Glibc)
import Glibc
#endif

/// The trainer's process tree: for each attached root PID, the root and all its descendants
/// (found anew each tick from the parent PIDs in /proc/*/stat), summed: CPU utilization, resident
/// memory, threads, open file descriptors, disk bytes per second (where /proc/PID/io is readable)
/// and the number of processes. Every reading carries the root's `pid` label.
///
/// Rates count the processes present at both ticks; a process that started or ended between
/// them adds nothing to that interval's CPU and I/O rates.
public final class ProcessTreeSensor: @unchecked Sendable {
    public let name = "process"
    let procRoot: String
    let clockTicksPerSecond: Double
    let pageSize: Double
    let cpuCount: Double
    var previous: [Int32: Counters] = [:]
    /// Each root's tree as of the last sample (the PIDs whose GPU memory is the trainer's).
    public private(set) var lastTree: [Int32: [Int32]] = [:]

    public init(
        procRoot: String = "/proc", clockTicksPerSecond: Int = sysconf(Int32(_SC_CLK_TCK)),
        pageSize: Int = sysconf(Int32(_SC_PAGESIZE)), cpuCount: Int = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    ) {
        self.procRoot = procRoot
        self.clockTicksPerSecond = Double(max(clockTicksPerSecond, 1))
        self.pageSize = Double(pageSize)
        self.cpuCount = Double(max(cpuCount, 1))
    }

    struct Stat: Equatable {
        var pid: Int32
        var parent: Int32
        var cpuTicks: UInt64
        var threads: UInt64
        var residentPages: UInt64
    }

    struct Counters {
        var cpuTicks: UInt64
        var readBytes: UInt64?
        var writeBytes: UInt64?
    }

    /// One /proc/PID/stat line. The command name sits in parentheses and may itself hold spaces
    /// and parentheses: the fields are counted from the last ')'.
    static func parseStat(_ bytes: [UInt8]) -> Stat? {
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")),
            let pid = Int32(String(decoding: bytes.prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self))
        else { return nil }
        let rest = String(decoding: bytes[(close + 1)...], as: UTF8.self).split(separator: " ")
        guard rest.count >= 22, let parent = Int32(rest[1]), let user = UInt64(rest[11]),
            let system = UInt64(rest[12]), let threads = UInt64(rest[17]), let rss = UInt64(rest[21])
        else { return nil }
        return Stat(pid: pid, parent: parent, cpuTicks: user + system, threads: threads, residentPages: rss)
    }

    /// read_bytes and write_bytes of /proc/PID/io (bytes that reached the storage layer).
    static func parseIO(_ bytes: [UInt8]) -> (read: UInt64, write: UInt64)? {
        var read: UInt64?
        var write: UInt64?
        for fields in lines(bytes) where fields.count >= 2 {
            if fields[0] == "read_bytes:" { read = UInt64(fields[1]) }
            if fields[0] == "write_bytes:" { write = UInt64(fields[1]) }
        }
        guard let read, let write else { return nil }
        return (read, write)
    }

    /// Every process's stat line, by PID.
    func processes() -> [Int32: Stat] {
        var out: [Int32: Stat] = [:]
        for name in directoryEntries(procRoot) {
            guard let pid = Int32(name), let bytes = try? readFile("\(procRoot)/\(name)/stat"),
                let stat = Self.parseStat(bytes)
            else { continue }
            out[pid] = stat
        }
        return out
    }

    /// The root and its descendants that exist now.
    static func tree(of root: Int32, in processes: [Int32: Stat]) -> [Int32] {
        guard processes[root] != nil else { return [] }
        var children: [Int32: [Int32]] = [:]
        for stat in processes.values { children[stat.parent, default: []].append(stat.pid) }
        var out: [Int32] = []
        var stack = [root]
        var seen: Set<Int32> = []
        while let pid = stack.popLast() {
            guard seen.insert(pid).inserted else { continue }
            out.append(pid)
            stack += children[pid] ?? []
        }
        return out.sorted()
    }

    /// Readings per root PID. `seconds` since the last call; 0 on the first (no rates).
    public func sample(roots: [Int32], seconds: Double) -> [Int32: [Reading]] {
        let all = processes()
        var current: [Int32: Counters] = [:]
        var out: [Int32: [Reading]] = [:]
        lastTree = [:]
        for root in Set(roots).sorted() {
            let members = Self.tree(of: root, in: all)
            guard !members.isEmpty else { continue }
            lastTree[root] = members
            var cpuDelta: UInt64 = 0
            var readDelta: UInt64 = 0
            var writeDelta: UInt64 = 0
            var ioSeen = false
            var rss = 0.0
            var threads: UInt64 = 0
            var descriptors = 0
            for pid in members {
                let stat = all[pid]!
                let io = (try? readFile("\(procRoot)/\(pid)/io")).flatMap(Self.parseIO)
                let counters = Counters(cpuTicks: stat.cpuTicks, readBytes: io?.read, writeBytes: io?.write)
                current[pid] = counters
                rss += Double(stat.residentPages) * pageSize
                threads += stat.threads
                descriptors += countEntries("\(procRoot)/\(pid)/fd")
                if let before = previous[pid] {
                    if counters.cpuTicks >= before.cpuTicks { cpuDelta += counters.cpuTicks - before.cpuTicks }
                    if let read = counters.readBytes, let write = counters.writeBytes,
                        let readBefore = before.readBytes, let writeBefore = before.writeBytes
                    {
                        ioSeen = true
                        if read >= readBefore { readDelta += read - readBefore }
                        if write >= writeBefore { writeDelta += write - writeBefore }
                    }
                }
            }
            let labels = [Reading.Label("pid", String(root))]
            var readings = [
                Reading("process.memory.usage", labels, rss),
                Reading("process.thread.count", labels, Double(threads)),
                Reading("process.open_file_descriptor.count", labels, Double(descriptors)),
                Reading("process.count", labels, Double(members.count)),
            ]
            if seconds > 0 {
                readings.append(Reading(
                    "process.cpu.utilization", labels,
                    Double(cpuDelta) / clockTicksPerSecond / seconds / cpuCount))
                if ioSeen {
                    readings.append(Reading("process.disk.io", labels + [.init("direction", "read")], Double(readDelta) / seconds))
                    readings.append(Reading("process.disk.io", labels + [.init("direction", "write")], Double(writeDelta) / seconds))
                }
            }
            out[root] = readings
        }
        previous = current
        return out
    }
}

/// Entries of a directory, "." and ".." aside; 0 when it cannot be read (another user's fd/).
func countEntries(_ path: String) -> Int {
    directoryEntries(path).count
}
