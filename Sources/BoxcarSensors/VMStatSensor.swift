/// The kernel's memory events (`/proc/vmstat`), per second: major page faults (a page read back
/// from disk: a working set larger than memory), pages swapped in and out, and processes killed
/// by the OOM killer (a data-loader worker gone without a word in the trainer's log); beside the
/// rates, the counters since boot.
public final class VMStatSensor: CounterSensor {
    public let name = "vmstat"
    /// Read to its end: some 4 KB, which the kernel hands over a page at a read.
    let files = OpenFiles<String>()
    let procRoot: String
    var previous: Snapshot?

    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
    }

    /// The counters read (of some two hundred), each with its series' name and labels. oom_kill
    /// came in Linux 4.13: an older kernel has no series of it.
    static let counters: [(field: StaticString, name: String, labels: [Reading.Label])] = [
        ("pgmajfault", "system.paging.faults", [.init("system.paging.fault.type", "major")]),
        ("pswpin", "system.paging.operations", [.init("system.paging.direction", "in")]),
        ("pswpout", "system.paging.operations", [.init("system.paging.direction", "out")]),
        ("oom_kill", "system.memory.oom_kills", []),
    ]

    /// Each counter's value, in `counters`' order; nil where the file lacks it.
    typealias Snapshot = [UInt64?]

    static func parse(_ bytes: [UInt8]) -> Snapshot {
        var out = Snapshot(repeating: nil, count: counters.count)
        forEachLine(bytes) { fields in
            guard fields.count == 2, let index = counters.firstIndex(where: { fields[0].equals($0.field) }) else { return }
            out[index] = fields[1].integer
        }
        return out
    }

    func snapshot() throws -> Snapshot {
        let snapshot = Self.parse(try files.read(procRoot + "/vmstat"))
        guard snapshot.contains(where: { $0 != nil }) else { throw SensorError("\(procRoot)/vmstat has none of pgmajfault, pswpin, pswpout, oom_kill") }
        return snapshot
    }

    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double, counters: Bool) -> [Reading] {
        var out: [Reading] = []
        for (index, counter) in Self.counters.enumerated() {
            guard let value = new[index] else { continue }
            if counters { out.append(Reading.cumulative(counter.name, counter.labels, Double(value))) }
            if let before = old?[index], let perSecond = rate(before, value, seconds) {
                out.append(Reading(counter.name + ".rate", counter.labels, perSecond))
            }
        }
        return out
    }
}
