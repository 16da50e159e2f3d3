#if canImport(Glibc)
import Glibc
#endif

/// The trainer's process tree: for each attached root PID, the root and all its descendants
/// (found each tick from the parent PIDs in /proc/*/stat), summed: CPU utilization, resident
/// memory, threads, open file descriptors, disk bytes per second (where /proc/PID/io is readable)
/// and the number of processes. Every reading carries the root's `pid` label.
///
/// Rates count the processes present at both ticks; a process that started or ended between
/// them adds nothing to that interval's CPU and I/O rates. The tree's CPU time and disk bytes are
/// also kept as counters (`process.cpu.time`, `process.disk.io`) that only rise: each
/// tick adds what the processes present at both ticks did, and what a process new since the last
/// tick did in its whole life (all of it since that tick); a process that ended takes only its
/// last interval with it. Each process's own numbers (`lastProcesses`) are kept for the exporter's
/// page, not stored: data-loader workers come and go by the hundred.
public final class ProcessTreeSensor: @unchecked Sendable {
    public let name = "process"
    /// /proc/PID/stat, /proc/PID/io and /proc/PID/fd of the trees' processes, kept open between
    /// ticks.
    let files = OpenFiles<ProcessFile>(wholeInOneRead: true)
    struct ProcessFile: Hashable {
        var pid: Int32
        var kind: Kind
        enum Kind { case stat, io, descriptors, loadavg }
    }
    let procRoot: String
    let clockTicksPerSecond: Double
    let pageSize: Double
    let cpuCount: Double
    /// Whether `procRoot` is the kernel's procfs of this process's PID namespace (its `self`
    /// links to this process), not a fixture tree or another namespace's.
    let isOwnProcfs: Bool
    var sizeIsDescriptorCount: Bool
    var previous: [Int32: Counters] = [:]
    /// Each root's tree as of the last sample (the PIDs whose GPU memory is the trainer's).
    public private(set) var lastTree: [Int32: [Int32]] = [:]
    /// Each root's processes as of the last sample, in PID order.
    public private(set) var lastProcesses: [Int32: [ProcessSample]] = [:]
    /// Each root's running totals: CPU ticks, bytes read, bytes written.
    var totals: [Int32: (cpuTicks: UInt64, read: UInt64, write: UInt64)] = [:]
    /// Each root's processes already counted in its totals: one whose read failed for a tick
    /// comes back without its whole life being added again.
    var counted: [Int32: Set<Int32>] = [:]

    /// One process of a tree as the last tick read it.
    public struct ProcessSample: Sendable, Equatable {
        public var pid: Int32
        /// CPU time since it started (user and system), in seconds.
        public var cpuSeconds: Double
        /// Its share of all CPUs over the last interval; 0 on its first tick.
        public var cpuUtilization: Double
        public var residentBytes: Double
        public var threads: Double
        public var descriptors: Double?
        public var readBytes: Double?
        public var writeBytes: Double?

        public init(
            pid: Int32, cpuSeconds: Double, cpuUtilization: Double, residentBytes: Double, threads: Double,
            descriptors: Double?, readBytes: Double?, writeBytes: Double?
        ) {
            self.pid = pid
            self.cpuSeconds = cpuSeconds
            self.cpuUtilization = cpuUtilization
            self.residentBytes = residentBytes
            self.threads = threads
            self.descriptors = descriptors
            self.readBytes = readBytes
            self.writeBytes = writeBytes
        }
    }

    public init(
        procRoot: String = "/proc", clockTicksPerSecond: Int = sysconf(Int32(_SC_CLK_TCK)),
        pageSize: Int = sysconf(Int32(_SC_PAGESIZE)), cpuCount: Int = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    ) {
        self.procRoot = procRoot
        self.clockTicksPerSecond = Double(max(clockTicksPerSecond, 1))
        self.pageSize = Double(pageSize)
        self.cpuCount = Double(max(cpuCount, 1))
        self.isOwnProcfs = Self.isOwnProcfs(procRoot)
        self.sizeIsDescriptorCount = isOwnProcfs && Self.sizeCountsDescriptors(procRoot: procRoot)
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
        var descriptors: Int?
    }

    /// Each process's `fd/` is sized on every `detailEvery`th read of the trees (and at its
    /// first), its `stat` and `io` at every one: sizing fd/ costs the kernel about as much as
    /// reading stat (`proc_fd_getattr` walks the fd table), and the number of descriptors moves
    /// slowly. Between, the last count stands. (`io` is read every time all the same: what a
    /// process read or wrote since its last read is lost when it ends, and data-loader workers
    /// come and go.)
    public static let detailEvery = 4
    var detailReadsToGo = 0

    /// One /proc/PID/stat line. The command name sits in parentheses and may itself hold spaces
    /// and parentheses: the fields are counted from the last ')'. Parsed as bytes into no array:
    /// this runs for every process of every tree on every tick.
    static func parseStat(_ bytes: [UInt8]) -> Stat? {
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        var pid: UInt64?
        forEachInteger(bytes, limit: 1) { _, value in pid = value }
        // After ") S ": ppid (field 4) … utime (14), stime (15) … num_threads (20) … rss (24).
        // The state letter is not a number, so the integers start at the parent PID.
        var stat = Stat(pid: Int32(truncatingIfNeeded: pid ?? 0), parent: 0, cpuTicks: 0, threads: 0, residentPages: 0)
        let count = forEachInteger(bytes, from: close + 1, limit: 21) { index, value in
            switch index {
            case 0: stat.parent = Int32(truncatingIfNeeded: value)
            case 10, 11: stat.cpuTicks &+= value
            case 16: stat.threads = value
            case 20: stat.residentPages = value
            default: break
            }
        }
        guard pid != nil, count == 21 else { return nil }
        return stat
    }

    /// read_bytes and write_bytes of /proc/PID/io (bytes that reached the storage layer): the
    /// fifth and sixth numbers of the file.
    static func parseIO(_ bytes: [UInt8]) -> (read: UInt64, write: UInt64)? {
        var out: (read: UInt64, write: UInt64) = (0, 0)
        let count = forEachInteger(bytes, limit: 6) { index, value in
            if index == 4 { out.read = value } else if index == 5 { out.write = value }
        }
        return count == 6 ? out : nil
    }

    /// Every process's parent, from its stat line. A process's parent changes only when its
    /// parent dies, so each new PID's stat is read once and the answer kept while the PID stays
    /// listed; the trees' own members are read every tick anyway and correct it (an orphan is
    /// adopted by an ancestor, so it was in the tree already if its new parent is). A PID that
    /// ended and was reused between two listings would keep its old parent: that takes the
    /// kernel handing out every other PID in between, and once every `rescanEvery` ticks all are
    /// read again regardless. (Reading each thread's /proc/PID/task/TID/children instead costs a
    /// read per thread: hundreds for a trainer.)
    var parents: [Int32: Int32] = [:]
    var ticksSinceRescan = 0
    static let rescanEvery = 300
    /// The PID the kernel had handed out last at the previous tick and at the one before.
    var newestPIDs: (previous: UInt64?, before: UInt64?)

    func refreshParents() {
        let rescan = ticksSinceRescan == 0
        ticksSinceRescan = (ticksSinceRescan + 1) % Self.rescanEvery
        // No process or thread started for two ticks: no PID is new, and listing /proc (a tenth
        // of a tick) would only tell which ended; those fail their stat read instead. Two, as the
        // kernel counts a PID a moment before its process shows in /proc: the tick after a change
        // lists again.
        let newest = newestPID()
        defer { newestPIDs = (newest, newestPIDs.previous) }
        if !rescan, let newest, newest == newestPIDs.previous, newest == newestPIDs.before { return }
        var next: [Int32: Int32] = [:]
        next.reserveCapacity(parents.count)
        for pid in processIDs(procRoot) {
            if !rescan, let parent = parents[pid] {
                next[pid] = parent
            } else if let bytes = try? readFile("\(procRoot)/\(pid)/stat"), let stat = Self.parseStat(bytes) {
                // Read and closed: a descriptor per process of the machine is too many to keep.
                next[pid] = stat.parent
            }
        }
        if next != parents {
            parents = next
            childrenCache = nil
        }
    }

    /// Each parent's children, by the parents known; made again only when a parent changed.
    var childrenCache: [Int32: [Int32]]?

    func setParent(_ pid: Int32, _ parent: Int32?) {
        guard parents[pid] != parent else { return }
        parents[pid] = parent
        childrenCache = nil
    }

    /// The root and its descendants, by the parents known.
    func tree(of root: Int32) -> [Int32] {
        guard parents[root] != nil else { return [] }
        let children = childrenCache ?? Dictionary(grouping: parents.keys) { parents[$0]! }
        childrenCache = children
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
        refreshParents()
        let detail = detailReadsToGo == 0
        detailReadsToGo = detail ? Self.detailEvery - 1 : detailReadsToGo - 1
        var current: [Int32: Counters] = [:]
        current.reserveCapacity(previous.count)
        var out: [Int32: [Reading]] = [:]
        lastTree = [:]
        lastProcesses = [:]
        totals = totals.filter { roots.contains($0.key) }
        counted = counted.filter { roots.contains($0.key) }
        for root in Set(roots).sorted() {
            var members: [Int32] = []
            var stats: [Stat] = []
            for pid in tree(of: root) {
                guard let bytes = try? files.read(.init(pid: pid, kind: .stat), path: { "\(procRoot)/\(pid)/stat" }), let stat = Self.parseStat(bytes) else {
                    // Ended since the listing; any other failure (out of descriptors) is no reason
                    // to lose the process and its subtree: list /proc again next tick.
                    if exists(pid) { newestPIDs = (nil, nil) } else { setParent(pid, nil) }
                    continue
                }
                setParent(pid, stat.parent)
                members.append(pid)
                stats.append(stat)
            }
            guard !members.isEmpty else { continue }
            lastTree[root] = members
            var cpuDelta: UInt64 = 0
            var readDelta: UInt64 = 0
            var writeDelta: UInt64 = 0
            var ioSeen = false
            var rss = 0.0
            var threads: UInt64 = 0
            var descriptors: Int?
            var processes: [ProcessSample] = []
            processes.reserveCapacity(members.count)
            // What this tick adds to the running totals: the deltas, and new processes whole.
            var added: (cpuTicks: UInt64, read: UInt64, write: UInt64) = (0, 0, 0)
            for (pid, stat) in zip(members, stats) {
                let io = (try? files.read(.init(pid: pid, kind: .io), path: { "\(procRoot)/\(pid)/io" })).flatMap(Self.parseIO)
                // Another user's fd/ cannot be listed: leave it out rather than count it as 0.
                let count = detail || previous[pid] == nil ? descriptorCount(pid) : previous[pid]?.descriptors
                let counters = Counters(cpuTicks: stat.cpuTicks, readBytes: io?.read, writeBytes: io?.write, descriptors: count)
                current[pid] = counters
                rss += Double(stat.residentPages) * pageSize
                threads += stat.threads
                if let count { descriptors = (descriptors ?? 0) + count }
                var process = ProcessSample(
                    pid: pid, cpuSeconds: Double(stat.cpuTicks) / clockTicksPerSecond, cpuUtilization: 0,
                    residentBytes: Double(stat.residentPages) * pageSize, threads: Double(stat.threads),
                    descriptors: count.map(Double.init), readBytes: io.map { Double($0.read) }, writeBytes: io.map { Double($0.write) })
                if let before = previous[pid] {
                    counted[root, default: []].insert(pid)
                    let cpu = counters.cpuTicks >= before.cpuTicks ? counters.cpuTicks - before.cpuTicks : 0
                    cpuDelta += cpu
                    added.cpuTicks += cpu
                    if seconds > 0 { process.cpuUtilization = Double(cpu) / clockTicksPerSecond / seconds / cpuCount }
                    if let read = counters.readBytes, let write = counters.writeBytes,
                        let readBefore = before.readBytes, let writeBefore = before.writeBytes
                    {
                        ioSeen = true
                        if read >= readBefore { readDelta += read - readBefore }
                        if write >= writeBefore { writeDelta += write - writeBefore }
                    }
                    added.read += (counters.readBytes ?? 0) >= (before.readBytes ?? 0) ? (counters.readBytes ?? 0) - (before.readBytes ?? 0) : 0
                    added.write += (counters.writeBytes ?? 0) >= (before.writeBytes ?? 0) ? (counters.writeBytes ?? 0) - (before.writeBytes ?? 0) : 0
                } else if counted[root, default: []].insert(pid).inserted {
                    // New since the last tick (or the tree is new): all it did counts.
                    added.cpuTicks += counters.cpuTicks
                    added.read += counters.readBytes ?? 0
                    added.write += counters.writeBytes ?? 0
                }
                processes.append(process)
            }
            lastProcesses[root] = processes
            var total = totals[root] ?? (0, 0, 0)
            total.cpuTicks += added.cpuTicks
            total.read += added.read
            total.write += added.write
            totals[root] = total
            let labels = [Reading.Label("process.pid", String(root))]
            var readings = [
                Reading("process.memory.usage", labels, rss),
                Reading("process.thread.count", labels, Double(threads)),
                Reading("process.count", labels, Double(members.count)),
                Reading.cumulative("process.cpu.time", labels, Double(total.cpuTicks) / clockTicksPerSecond),
            ]
            if ioSeen || total.read > 0 || total.write > 0 {
                readings.append(Reading.cumulative("process.disk.io", [.init("disk.io.direction", "read")] + labels, Double(total.read)))
                readings.append(Reading.cumulative("process.disk.io", [.init("disk.io.direction", "write")] + labels, Double(total.write)))
            }
            if let descriptors {
                readings.append(Reading("process.unix.file_descriptor.count", labels, Double(descriptors)))
            }
            if seconds > 0 {
                readings.append(Reading(
                    "process.cpu.utilization", labels,
                    Double(cpuDelta) / clockTicksPerSecond / seconds / cpuCount))
                if ioSeen {
                    readings.append(Reading("process.disk.io.rate", [.init("disk.io.direction", "read")] + labels, Double(readDelta) / seconds))
                    readings.append(Reading("process.disk.io.rate", [.init("disk.io.direction", "write")] + labels, Double(writeDelta) / seconds))
                }
            }
            out[root] = readings
        }
        previous = current
        files.prune(unusedFor: Self.detailEvery)
        return out
    }
}

extension ProcessTreeSensor {
    /// The number of descriptors a process holds; nil where its fd/ cannot be read (another
    /// user's). Linux 6.2+ gives the count as the size of /proc/PID/fd: an fstat of the directory
    /// kept open (no path to look up) instead of listing it.
    func descriptorCount(_ pid: Int32) -> Int? {
        let path = { "\(self.procRoot)/\(pid)/fd" }  // made only where the directory is not open
        if sizeIsDescriptorCount {
            let key = ProcessFile(pid: pid, kind: .descriptors)
            var info = stat()
            // Opening needs the right to read fd/ (another user's, a setuid process's): where that
            // is refused, stat the path, which needs none.
            guard let fd = try? files.descriptor(key, flags: O_RDONLY | O_DIRECTORY, path: path) else {
                return stat(path(), &info) == 0 ? Int(info.st_size) : nil
            }
            guard fstat(fd, &info) == 0 else {
                // Kept open past its process's end (the PID taken again since): by the path.
                files.forget(key)
                return stat(path(), &info) == 0 ? Int(info.st_size) : nil
            }
            return Int(info.st_size)
        }
        guard access(path(), R_OK | X_OK) == 0, let directory = opendir(path()) else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let dot = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] == UInt8(ascii: ".") }
            if !dot { count += 1 }
        }
        return count
    }

    /// Whether the size of /proc/PID/fd counts the descriptors: only on the kernel's procfs (a
    /// fixture tree's directories have sizes of their own), and only from Linux 6.2 (older ones
    /// report 0).
    static func sizeCountsDescriptors(procRoot: String) -> Bool {
        var info = stat()
        return stat(procRoot + "/self/fd", &info) == 0 && info.st_size > 0
    }

    static func isOwnProcfs(_ procRoot: String) -> Bool {
        var link = [CChar](repeating: 0, count: 32)
        let length = readlink(procRoot + "/self", &link, link.count)
        return length > 0 && String(decoding: link.prefix(length).map(UInt8.init), as: UTF8.self) == String(getpid())
    }

    /// The PID the kernel handed out last in this PID namespace (the fifth field of
    /// /proc/loadavg, which the kernel fills from the reader's namespace: hence only on this
    /// process's own procfs); nil elsewhere or when it cannot be read.
    func newestPID() -> UInt64? {
        guard isOwnProcfs, let bytes = try? files.read(.init(pid: 0, kind: .loadavg), path: { "\(procRoot)/loadavg" }) else {
            return nil
        }
        var newest: UInt64?
        // "0.52 0.58 0.59 3/467 12345": the integers are 0 52 0 58 0 59 3 467 12345.
        forEachInteger(bytes, limit: 9) { index, value in if index == 8 { newest = value } }
        return newest
    }

    /// Whether a process with this PID exists.
    public func exists(_ pid: Int32) -> Bool {
        access("\(procRoot)/\(pid)", F_OK) == 0
    }
}
