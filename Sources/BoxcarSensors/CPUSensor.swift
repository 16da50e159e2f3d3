/// CPU time by state, overall and per CPU, as fractions of the time between two ticks
/// (`/proc/stat`); context switches per second; the load averages (`/proc/loadavg`).
public final class CPUSensor: CounterSensor {
    public let name = "cpu"
    let files = OpenFiles<String>(wholeInOneRead: true)
    let procRoot: String
    var previous: Snapshot?

    struct Snapshot {
        var stat: ProcStat
        var load: [Reading]
    }

    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
    }

    /// The counters of /proc/stat that matter here, in clock ticks.
    struct ProcStat: Equatable {
        /// "" for the cpu line (all CPUs), else the CPU number.
        var cpus: [(cpu: String, times: [UInt64])]
        var contextSwitches: UInt64

        static func == (a: ProcStat, b: ProcStat) -> Bool {
            a.contextSwitches == b.contextSwitches && a.cpus.map(\.cpu) == b.cpus.map(\.cpu)
                && a.cpus.map(\.times) == b.cpus.map(\.times)
        }
    }

    /// The states of a cpu line, in the kernel's order (guest time is already counted in user).
    static let states = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]

    static func parseStat(_ bytes: [UInt8]) throws -> ProcStat {
        var stat = ProcStat(cpus: [], contextSwitches: 0)
        try forEachLine(bytes) { fields in
            let first = fields[0]
            if first.hasPrefix("cpu") {
                let times = fields.dropFirst().prefix(states.count).map { $0.integer ?? 0 }
                guard times.count == states.count else { throw SensorError("a cpu line of /proc/stat has \(times.count) fields") }
                stat.cpus.append((first.dropFirst(3).string, times))
            } else if first.equals("ctxt"), fields.count > 1 {
                stat.contextSwitches = fields[1].integer ?? 0
            }
        }
        guard !stat.cpus.isEmpty else { throw SensorError("/proc/stat has no cpu line") }
        return stat
    }

    /// Fractions of each state between two readings, and context switches per second.
    static func readings(from old: ProcStat, to new: ProcStat, seconds: Double) -> [Reading] {
        var out: [Reading] = []
        let before = Dictionary(old.cpus.map { ($0.cpu, $0.times) }, uniquingKeysWith: { a, _ in a })
        for (cpu, times) in new.cpus {
            guard let earlier = before[cpu] else { continue }
            // A counter that went backwards (a CPU that went offline and came back) counts as 0.
            let deltas = zip(times, earlier).map { $0 >= $1 ? Double($0 - $1) : 0 }
            let total = deltas.reduce(0, +)
            guard total > 0 else { continue }
            for (state, delta) in zip(states, deltas) {
                let labels = cpu.isEmpty ? [Reading.Label("state", state)] : [.init("cpu", cpu), .init("state", state)]
                out.append(Reading("system.cpu.utilization", labels, delta / total))
            }
        }
        if seconds > 0, new.contextSwitches >= old.contextSwitches {
            out.append(Reading("system.cpu.context_switches", [], Double(new.contextSwitches - old.contextSwitches) / seconds))
        }
        return out
    }

    static func parseLoadAverage(_ bytes: [UInt8]) throws -> [Reading] {
        var first: [ArraySlice<UInt8>] = []
        forEachLine(bytes) { fields in if first.isEmpty { first = fields } }
        guard first.count >= 3, let one = first[0].number, let five = first[1].number, let fifteen = first[2].number
        else { throw SensorError("/proc/loadavg is not three load averages") }
        return [
            Reading("system.cpu.load_average.1m", [], one),
            Reading("system.cpu.load_average.5m", [], five),
            Reading("system.cpu.load_average.15m", [], fifteen),
        ]
    }

    func snapshot() throws -> Snapshot {
        Snapshot(
            stat: try Self.parseStat(try files.read(procRoot + "/stat")),
            load: try Self.parseLoadAverage(try files.read(procRoot + "/loadavg")))
    }

    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double) -> [Reading] {
        guard let old else { return new.load }
        return new.load + Self.readings(from: old.stat, to: new.stat, seconds: seconds)
    }
}
