import BoxcarModel

/// The cgroup (v2) a process runs in: inside a container, the container's own memory and CPU,
/// not the host's. `memory.current` and `memory.max`, `cpu.max` as a number of CPUs, and from
/// `cpu.stat` the CPUs in use and the time throttled per second. The process is the attached
/// trainer's when there is one (the sampler says so), else the agent itself.
public final class CgroupSensor: Sensor {
    public let name = "cgroup"
    let files = OpenFiles<String>(wholeInOneRead: true)
    let procRoot: String
    let sysRoot: String
    /// Whose cgroup: a PID, or "self".
    public var process: String = "self"

    /// A sensor of the same roots for another process's cgroup (an attached trainer's).
    public func following(process pid: Int32) -> CgroupSensor {
        let sensor = CgroupSensor(procRoot: procRoot, sysRoot: sysRoot)
        sensor.process = String(pid)
        return sensor
    }
    var previous: (path: String, stat: [String: UInt64])?

    public init(procRoot: String = "/proc", sysRoot: String = "/sys") {
        self.procRoot = procRoot
        self.sysRoot = sysRoot
    }

    /// The cgroup v2 path from /proc/PID/cgroup ("0::/kubepods/…"). A file that also lists v1
    /// controllers ("4:memory:/…", a hybrid or v1 host) is an error: the memory and CPU
    /// controllers are then in v1 hierarchies, which are not read.
    static func path(_ bytes: [UInt8]) throws -> String {
        let entries = bytes.split(separator: UInt8(ascii: "\n"))
        guard !entries.contains(where: { !$0.hasPrefix("0::") }), let unified = entries.first else {
            throw SensorError("the process's controllers are in cgroup v1 hierarchies, which are not read (cgroup v2 only)")
        }
        return unified.dropFirst(3).string
    }

    /// `key value` lines (cpu.stat).
    static func keyed(_ bytes: [UInt8]) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        forEachLine(bytes) { fields in
            if fields.count == 2, let value = fields[1].integer { out[fields[0].string] = value }
        }
        return out
    }

    public func sample(elapsed: Duration?) throws -> [Reading] {
        let path = try Self.path(try files.read("\(procRoot)/\(process)/cgroup"))
        let directory = sysRoot + "/fs/cgroup" + (path == "/" ? "" : path)
        var out: [Reading] = []
        if let current = files.number(directory + "/memory.current") {
            out.append(Reading("container.memory.usage", [], current))
        }
        if let max = files.number(directory + "/memory.max") {  // "max": no limit, no reading
            out.append(Reading("container.memory.limit", [], max))
        }
        var cpuMax: [ArraySlice<UInt8>] = []
        forEachLine((try? files.read(directory + "/cpu.max")) ?? []) { cpuMax = $0 }
        if cpuMax.count == 2, let quota = cpuMax[0].number, let period = cpuMax[1].number, period > 0 {
            out.append(Reading("container.cpu.limit", [], quota / period))
        }
        let stat = Self.keyed((try? files.read(directory + "/cpu.stat")) ?? [])
        if let usage = stat["usage_usec"] { out.append(Reading.cumulative("container.cpu.time", [], Double(usage) / 1_000_000)) }
        if let throttled = stat["throttled_usec"] {
            out.append(Reading.cumulative("container.cpu.throttled.cumulative", [], Double(throttled) / 1_000_000))
        }
        if let elapsed, let previous, previous.path == path {
            let seconds = elapsed.seconds
            if let old = previous.stat["usage_usec"], let new = stat["usage_usec"], let perSecond = rate(old, new, seconds) {
                out.append(Reading("container.cpu.usage", [], perSecond / 1_000_000))
            }
            if let old = previous.stat["throttled_usec"], let new = stat["throttled_usec"], let perSecond = rate(old, new, seconds) {
                out.append(Reading("container.cpu.throttled", [], perSecond / 1_000_000))
            }
        }
        previous = (path, stat)
        files.prune()  // the cgroup of a trainer that left, the files of its cgroup
        if out.isEmpty { throw SensorError("no cgroup v2 files under \(directory)") }
        return out
    }
}
