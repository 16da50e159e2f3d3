#if canImport(Glibc)
import Glibc
#endif

/// CPU time by state, overall and per CPU, as fractions of the time between two ticks
/// (`/proc/stat`); context switches per second; the load averages (`/proc/loadavg`). Beside the
/// rates, the counters themselves (`system.cpu.time` per CPU, in seconds, and the context
/// switches since boot), which the exporter exposes and remote write sends as counters. The same
/// file's processes running and blocked on I/O, and processes created (forks) per second.
public final class CPUSensor: CounterSensor {
    public let name = "cpu"
    let files = OpenFiles<String>(wholeInOneRead: true)
    let procRoot: String
    let clockTicksPerSecond: Double
    var previous: Snapshot?

    struct Snapshot {
        var stat: ProcStat
        var load: [Reading]
    }

    public init(procRoot: String = "/proc", clockTicksPerSecond: Int = sysconf(Int32(_SC_CLK_TCK))) {
        self.procRoot = procRoot
        self.clockTicksPerSecond = Double(max(clockTicksPerSecond, 1))
    }

    /// The counters of /proc/stat that matter here, in clock ticks.
    struct ProcStat: Equatable {
        /// "" for the cpu line (all CPUs), else the CPU number.
        var cpus: [(cpu: String, times: [UInt64])]
        var contextSwitches: UInt64
        /// Forks since boot, and the processes runnable and blocked on I/O now.
        var forks: UInt64?
        var running: UInt64?
        var blocked: UInt64?

        static func == (a: ProcStat, b: ProcStat) -> Bool {
            a.contextSwitches == b.contextSwitches && a.forks == b.forks && a.running == b.running && a.blocked == b.blocked
                && a.cpus.map(\.cpu) == b.cpus.map(\.cpu)
                && a.cpus.map(\.times) == b.cpus.map(\.times)
        }
    }

    /// The states of a cpu line, in the kernel's order (guest time is already counted in user),
    /// as OpenTelemetry's `cpu.mode` names them (irq: `interrupt`; softirq has no name there).
    static let states = ["user", "nice", "system", "idle", "iowait", "interrupt", "softirq", "steal"]

    static func parseStat(_ bytes: [UInt8]) throws -> ProcStat {
        var stat = ProcStat(cpus: [], contextSwitches: 0)
        try forEachLine(bytes) { fields in
            let first = fields[0]
            if first.hasPrefix("cpu") {
                let times = fields.dropFirst().prefix(states.count).map { $0.integer ?? 0 }
                guard times.count == states.count else { throw SensorError("a cpu line of /proc/stat has \(times.count) fields") }
                stat.cpus.append((first.dropFirst(3).string, times))
            } else if fields.count > 1 {
                if first.equals("ctxt") { stat.contextSwitches = fields[1].integer ?? 0 }
                if first.equals("processes") { stat.forks = fields[1].integer }
                if first.equals("procs_running") { stat.running = fields[1].integer }
                if first.equals("procs_blocked") { stat.blocked = fields[1].integer }
            }
        }
        guard !stat.cpus.isEmpty else { throw SensorError("/proc/stat has no cpu line") }
        return stat
    }

    /// Each cpu line's labels by state, made once for the CPUs of the last tick (they stay the
    /// same while no CPU goes on- or offline): a 192-CPU machine has 1,536 of them a tick, each
    /// an array to allocate, and the sensor set tells a reading's series by comparing its labels
    /// with the last tick's, which is at once done for the same array.
    private var labelsByLine: (cpus: [String], utilization: [[[Reading.Label]]], time: [[[Reading.Label]]]) = ([], [], [])

    private func labels(for cpus: [(cpu: String, times: [UInt64])]) -> (utilization: [[[Reading.Label]]], time: [[[Reading.Label]]]) {
        if !cpus.map(\.cpu).elementsEqual(labelsByLine.cpus) {
            labelsByLine = (
                cpus.map(\.cpu),
                cpus.map { cpu in
                    Self.states.map { state in
                        cpu.cpu.isEmpty ? [Reading.Label("cpu.mode", state)] : [.init("cpu.logical_number", cpu.cpu), .init("cpu.mode", state)]
                    }
                },
                cpus.map { cpu in Self.states.map { [.init("cpu.logical_number", cpu.cpu), .init("cpu.mode", $0)] } })
        }
        return (labelsByLine.utilization, labelsByLine.time)
    }

    /// Fractions of each state between two readings, and context switches per second.
    func readings(from old: ProcStat, to new: ProcStat, seconds: Double) -> [Reading] {
        var out: [Reading] = []
        out.reserveCapacity(new.cpus.count * Self.states.count + 2)
        let labels = labels(for: new.cpus).utilization
        // The same CPUs in the same order (a CPU goes on- or offline seldom): matched by place.
        let samePlaces = old.cpus.count == new.cpus.count && zip(old.cpus, new.cpus).allSatisfy { $0.cpu == $1.cpu }
        let before = samePlaces ? [:] : Dictionary(old.cpus.map { ($0.cpu, $0.times) }, uniquingKeysWith: { a, _ in a })
        for (line, (cpu, times)) in new.cpus.enumerated() {
            guard let earlier = samePlaces ? old.cpus[line].times : before[cpu] else { continue }
            // A counter that went backwards (a CPU that went offline and came back) counts as 0.
            var total = 0.0
            for (now, then) in zip(times, earlier) where now >= then { total += Double(now - then) }
            guard total > 0 else { continue }
            for (state, (now, then)) in zip(times, earlier).enumerated() {
                out.append(Reading("system.cpu.utilization", sorted: labels[line][state], now >= then ? Double(now - then) / total : 0))
            }
        }
        if seconds > 0, new.contextSwitches >= old.contextSwitches {
            out.append(Reading("system.cpu.context_switches.rate", [], Double(new.contextSwitches - old.contextSwitches) / seconds))
        }
        if let before = old.forks, let after = new.forks, let forks = rate(before, after, seconds) {
            out.append(Reading("system.process.created.rate", [], forks))
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

    /// The counters as they stand: each CPU's time in each state (not the all-CPU line, which
    /// would count every second twice in a sum, as node_exporter leaves it out), and the context
    /// switches since boot.
    func counters(_ stat: ProcStat) -> [Reading] {
        var out: [Reading] = []
        out.reserveCapacity(stat.cpus.count * Self.states.count + 2)
        let labels = labels(for: stat.cpus).time
        for (line, (cpu, times)) in stat.cpus.enumerated() where !cpu.isEmpty {
            for (state, ticks) in times.enumerated() {
                out.append(Reading.cumulative("system.cpu.time", sorted: labels[line][state], Double(ticks) / clockTicksPerSecond))
            }
        }
        out.append(Reading.cumulative("system.cpu.context_switches", [], Double(stat.contextSwitches)))
        if let forks = stat.forks { out.append(Reading.cumulative("system.process.created", [], Double(forks))) }
        return out
    }

    /// Without `counters`, the counters as they stand are left out: on a 192-CPU machine they
    /// are half of the sensor's readings, and only the exporter's page and remote write read them.
    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double, counters: Bool) -> [Reading] {
        var out = new.load
        if let running = new.stat.running { out.append(Reading("system.process.count", [.init("process.state", "running")], Double(running))) }
        if let blocked = new.stat.blocked { out.append(Reading("system.process.count", [.init("process.state", "blocked")], Double(blocked))) }
        if counters { out += self.counters(new.stat) }
        if let old { out += readings(from: old.stat, to: new.stat, seconds: seconds) }
        return out
    }
}
