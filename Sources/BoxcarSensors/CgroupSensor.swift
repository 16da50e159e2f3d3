import BoxcarModel

/// The cgroup a process runs in: inside a container, the container's own memory and CPU, not the
/// host's. The memory in use and its limit, the CPU limit as a number of CPUs, the CPUs in use and
/// the time throttled per second. cgroup v2 (`memory.current`, `memory.max`, `cpu.max`,
/// `cpu.stat`), or on a v1 or hybrid host (controllers in v1 hierarchies, v2 mounted beside them
/// without them) the v1 files that say the same: `memory.usage_in_bytes`,
/// `memory.limit_in_bytes`, `cpu.cfs_quota_us` / `cpu.cfs_period_us`, `cpuacct.usage` and
/// `cpu.stat`'s `throttled_time`. The process is the attached trainer's when there is one (the
/// sampler says so), else the agent itself.
public final class CgroupSensor: Sensor {
    public let name = "cgroup"
    let files = OpenFiles<String>(wholeInOneRead: true)
    let procRoot: String
    let sysRoot: String
    /// Whose cgroup: a PID, or "self".
    public var process: String = "self"
    /// The v1 hierarchies mounted, read from mountinfo once they are needed.
    private var hierarchies: [Hierarchy]?

    /// A sensor of the same roots for another process's cgroup (an attached trainer's).
    public func following(process pid: Int32) -> CgroupSensor {
        let sensor = CgroupSensor(procRoot: procRoot, sysRoot: sysRoot)
        sensor.process = String(pid)
        return sensor
    }
    /// The cgroup read last and its CPU counters, microseconds.
    var previous: (path: String, stat: [String: UInt64])?
    /// The cgroups the process was last found in: a trainer's cgroup is read once more after the
    /// process is gone (what killed it, the OOM killer, counts there).
    private var lastMemberships: [Membership]?

    public init(procRoot: String = "/proc", sysRoot: String = "/sys") {
        self.procRoot = procRoot
        self.sysRoot = sysRoot
    }

    /// One line of /proc/PID/cgroup: "4:memory:/docker/abc", or "0::/kubepods/…" for v2.
    struct Membership: Equatable {
        var controllers: [String]
        var path: String
        var isUnified: Bool { controllers.isEmpty }
    }

    static func memberships(_ bytes: [UInt8]) -> [Membership] {
        bytes.split(separator: UInt8(ascii: "\n")).compactMap { line in
            let parts = line.split(separator: UInt8(ascii: ":"), maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { return nil }
            let controllers = parts[1].split(separator: UInt8(ascii: ",")).map(\.string)
            return Membership(controllers: controllers, path: parts[2].string)
        }
    }

    /// A v1 hierarchy as mounted: "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup
    /// rw,memory" (its root within the hierarchy, where it is mounted, its controllers from the
    /// super options).
    struct Hierarchy: Equatable {
        var root: String
        var mountPoint: String
        var controllers: Set<String>
    }

    static func hierarchies(_ mountinfo: [UInt8]) -> [Hierarchy] {
        var out: [Hierarchy] = []
        forEachLine(mountinfo) { fields in
            guard let dash = fields.firstIndex(where: { $0.equals("-") }), dash >= 5, fields.count >= dash + 4,
                fields[dash + 1].equals("cgroup")
            else { return }
            let options = fields[dash + 3].split(separator: UInt8(ascii: ",")).map(\.string)
            out.append(Hierarchy(
                root: fields[3].string.replacingEscapes(), mountPoint: fields[4].string.replacingEscapes(),
                controllers: Set(options)))
        }
        return out
    }

    /// The directory of `path` in the hierarchy that has `controller`, under `sysRoot`. Within a
    /// container without its own cgroup namespace the hierarchy's root is the container's cgroup
    /// itself, which the path then starts with.
    func directory(of controller: String, path: String, in hierarchies: [Hierarchy]) -> String? {
        guard let hierarchy = hierarchies.first(where: { $0.controllers.contains(controller) }) else { return nil }
        var relative = path
        if hierarchy.root != "/", relative == hierarchy.root || relative.hasPrefix(hierarchy.root + "/") {
            relative = String(relative.dropFirst(hierarchy.root.count))
        }
        if relative == "/" { relative = "" }
        let mountPoint = hierarchy.mountPoint.hasPrefix("/sys/") ? sysRoot + hierarchy.mountPoint.dropFirst(4) : hierarchy.mountPoint
        return mountPoint + relative
    }

    /// `key value` lines (cpu.stat).
    static func keyed(_ bytes: [UInt8]) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        forEachLine(bytes) { fields in
            if fields.count == 2, let value = fields[1].integer { out[fields[0].string] = value }
        }
        return out
    }

    /// What a cgroup's files say, in the units of v2: bytes, CPUs, and CPU counters in
    /// microseconds ("usage_usec", "throttled_usec").
    struct Figures {
        var memory: Double?
        var memoryLimit: Double?
        var cpuLimit: Double?
        /// Processes of the cgroup the OOM killer killed (v2 memory.events, v1 memory.oom_control,
        /// Linux 4.13+).
        var oomKills: UInt64?
        var stat: [String: UInt64] = [:]
        /// Which cgroup (a changed one starts its rates afresh), and where its files were read.
        var cgroup: String
        var location: String
    }

    func v2(_ path: String) -> Figures {
        let directory = sysRoot + "/fs/cgroup" + (path == "/" ? "" : path)
        var figures = Figures(cgroup: path, location: directory)
        figures.memory = files.number(directory + "/memory.current")
        figures.memoryLimit = files.number(directory + "/memory.max")  // "max": no limit, no reading
        figures.oomKills = Self.keyed((try? files.read(directory + "/memory.events")) ?? [])["oom_kill"]
        var cpuMax: [ArraySlice<UInt8>] = []
        forEachLine((try? files.read(directory + "/cpu.max")) ?? []) { cpuMax = $0 }
        if cpuMax.count == 2, let quota = cpuMax[0].number, let period = cpuMax[1].number, period > 0 {
            figures.cpuLimit = quota / period
        }
        figures.stat = Self.keyed((try? files.read(directory + "/cpu.stat")) ?? [])
        return figures
    }

    /// A limit of 2^62 bytes or more is v1's "no limit" (the largest page count times the page
    /// size: 9223372036854771712 on x86-64).
    static let noMemoryLimit = Double(1 << 62)

    func v1(_ memberships: [Membership]) throws -> Figures {
        // Read whole: a long mountinfo comes a page at a read.
        let hierarchies = try self.hierarchies ?? Self.hierarchies(readFile(procRoot + "/self/mountinfo"))
        self.hierarchies = hierarchies
        func directory(_ controller: String) -> String? {
            guard let membership = memberships.first(where: { $0.controllers.contains(controller) }) else { return nil }
            return self.directory(of: controller, path: membership.path, in: hierarchies)
        }
        let memory = directory("memory")
        let cpu = directory("cpu")
        let cpuacct = directory("cpuacct")
        guard memory != nil || cpu != nil || cpuacct != nil else {
            throw SensorError("no cgroup v1 hierarchy with the memory, cpu or cpuacct controller is mounted")
        }
        var figures = Figures(
            cgroup: memberships.map { $0.controllers.joined(separator: ",") + ":" + $0.path }.joined(separator: " "),
            location: Set([memory, cpu, cpuacct].compactMap { $0 }).sorted().joined(separator: ", "))
        if let memory {
            figures.memory = files.number(memory + "/memory.usage_in_bytes")
            figures.memoryLimit = files.number(memory + "/memory.limit_in_bytes").flatMap { $0 < Self.noMemoryLimit ? $0 : nil }
            figures.oomKills = Self.keyed((try? files.read(memory + "/memory.oom_control")) ?? [])["oom_kill"]
        }
        if let cpu {
            if let quota = files.number(cpu + "/cpu.cfs_quota_us"), quota > 0,  // -1: no limit
                let period = files.number(cpu + "/cpu.cfs_period_us"), period > 0
            {
                figures.cpuLimit = quota / period
            }
            if let throttled = Self.keyed((try? files.read(cpu + "/cpu.stat")) ?? [])["throttled_time"] {
                figures.stat["throttled_usec"] = throttled / 1000
            }
        }
        if let cpuacct, let usage = files.integer(cpuacct + "/cpuacct.usage") {
            figures.stat["usage_usec"] = usage / 1000
        }
        return figures
    }

    public func sample(elapsed: Duration?) throws -> [Reading] {
        let memberships: [Membership]
        do {
            memberships = Self.memberships(try files.read("\(procRoot)/\(process)/cgroup"))
            lastMemberships = memberships
        } catch {
            guard let last = lastMemberships else { throw error }
            memberships = last
        }
        // v2 alone lists one line, "0::/…"; a v1 or hybrid host lists its v1 hierarchies too.
        let figures: Figures
        if let unified = memberships.first(where: \.isUnified), memberships.count == 1 {
            figures = v2(unified.path)
        } else if memberships.contains(where: { !$0.isUnified }) {
            figures = try v1(memberships)
        } else {
            throw SensorError("\(procRoot)/\(process)/cgroup names no cgroup")
        }
        var out: [Reading] = []
        if let memory = figures.memory { out.append(Reading("container.memory.usage", [], memory)) }
        if let limit = figures.memoryLimit { out.append(Reading("container.memory.limit", [], limit)) }
        if let limit = figures.cpuLimit { out.append(Reading("container.cpu.limit", [], limit)) }
        // A counter the exporter shows and the sampler turns into an event of a trainer's
        // experiment when it rises.
        if let kills = figures.oomKills { out.append(Reading.cumulative("container.memory.oom_kills", [], Double(kills))) }
        let stat = figures.stat
        if let usage = stat["usage_usec"] { out.append(Reading.cumulative("container.cpu.time", [], Double(usage) / 1_000_000)) }
        if let throttled = stat["throttled_usec"] {
            out.append(Reading.cumulative("container.cpu.throttled", [], Double(throttled) / 1_000_000))
        }
        if let elapsed, let previous, previous.path == figures.cgroup {
            let seconds = elapsed.seconds
            if let old = previous.stat["usage_usec"], let new = stat["usage_usec"], let perSecond = rate(old, new, seconds) {
                out.append(Reading("container.cpu.usage", [], perSecond / 1_000_000))
            }
            if let old = previous.stat["throttled_usec"], let new = stat["throttled_usec"], let perSecond = rate(old, new, seconds) {
                out.append(Reading("container.cpu.throttled.rate", [], perSecond / 1_000_000))
            }
        }
        previous = (figures.cgroup, stat)
        files.prune()  // the cgroup of a trainer that left, the files of its cgroup
        if out.isEmpty { throw SensorError("no cgroup files under \(figures.location)") }
        return out
    }
}
