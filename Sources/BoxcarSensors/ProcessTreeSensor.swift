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
    let files = OpenFiles()
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
    /// and parentheses: the fields are counted from the last ')'. Parsed as bytes: this runs for
    /// every process of every tree on every tick.
    static func parseStat(_ bytes: [UInt8]) -> Stat? {
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let pid = integers(bytes, limit: 1)
        // After ") S ": ppid (field 4) … utime (14), stime (15) … num_threads (20) … rss (24).
        // The state letter is not a number, so the integers start at the parent PID.
        let fields = integers(bytes, from: close + 1, limit: 21)
        guard pid.count == 1, fields.count == 21 else { return nil }
        return Stat(
            pid: Int32(truncatingIfNeeded: pid[0]), parent: Int32(truncatingIfNeeded: fields[0]),
            cpuTicks: fields[10] + fields[11], threads: fields[16], residentPages: fields[20])
    }

    /// read_bytes and write_bytes of /proc/PID/io (bytes that reached the storage layer): the
    /// fifth and sixth numbers of the file.
    static func parseIO(_ bytes: [UInt8]) -> (read: UInt64, write: UInt64)? {
        let values = integers(bytes, limit: 6)
        guard values.count == 6 else { return nil }
        return (values[4], values[5])
    }

    /// Every process's stat line, by PID.
    func processes() -> [Int32: Stat] {
        var out: [Int32: Stat] = [:]
        for name in directoryEntries(procRoot) {
            // Every process of the machine: read and closed, not kept open (that would hold a
            // descriptor per process).
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

    /// The stat lines of each root's tree. Where the kernel lists each task's children
    /// (/proc/PID/task/TID/children, Linux 3.5+), only the tree's own processes are read;
    /// elsewhere every process is, to find the tree from their parent PIDs.
    func treeProcesses(roots: [Int32]) -> [Int32: Stat] {
        var out: [Int32: Stat] = [:]
        for root in roots {
            var stack = [root]
            while let pid = stack.popLast() {
                guard out[pid] == nil, let bytes = try? files.read("\(procRoot)/\(pid)/stat"),
                    let stat = Self.parseStat(bytes)
                else { continue }
                out[pid] = stat
                let tasks = directoryEntries("\(procRoot)/\(pid)/task")
                var listed = false
                for task in tasks {
                    // One file per thread: read and closed, or a trainer's hundreds of threads
                    // would each hold a descriptor.
                    guard let children = try? readFile("\(procRoot)/\(pid)/task/\(task)/children") else { continue }
                    listed = true
                    stack += integers(children).map { Int32(truncatingIfNeeded: $0) }
                }
                if !listed { return processes() }
            }
        }
        return out
    }

    /// Readings per root PID. `seconds` since the last call; 0 on the first (no rates).
    public func sample(roots: [Int32], seconds: Double) -> [Int32: [Reading]] {
        let all = treeProcesses(roots: roots)
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
            var descriptors: Int?
            for pid in members {
                let stat = all[pid]!
                let io = (try? files.read("\(procRoot)/\(pid)/io")).flatMap(Self.parseIO)
                let counters = Counters(cpuTicks: stat.cpuTicks, readBytes: io?.read, writeBytes: io?.write)
                current[pid] = counters
                rss += Double(stat.residentPages) * pageSize
                threads += stat.threads
                // Another user's fd/ cannot be listed: leave it out rather than count it as 0.
                if let count = countEntries("\(procRoot)/\(pid)/fd") { descriptors = (descriptors ?? 0) + count }
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
                Reading("process.count", labels, Double(members.count)),
            ]
            if let descriptors {
                readings.append(Reading("process.open_file_descriptor.count", labels, Double(descriptors)))
            }
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
        files.prune()
        return out
    }
}

/// Entries of a directory, "." and ".." aside; nil when it cannot be read (another user's fd/).
func countEntries(_ path: String) -> Int? {
    guard access(path, R_OK | X_OK) == 0, let directory = opendir(path) else { return nil }
    closedir(directory)
    return directoryEntries(path).count
}

extension ProcessTreeSensor {
    /// Whether a process with this PID exists.
    public func exists(_ pid: Int32) -> Bool {
        access("\(procRoot)/\(pid)", F_OK) == 0
    }
}
