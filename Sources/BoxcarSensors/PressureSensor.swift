/// Pressure stall information (`/proc/pressure/{cpu,memory,io}`, Linux 4.20+): the share of the
/// last 10 s that tasks stalled on the resource, and stalled seconds per second between ticks.
/// "some": at least one task stalled; "full": all non-idle tasks did at once.
public final class PressureSensor: CounterSensor {
    public let name = "pressure"
    let files = OpenFiles<String>(wholeInOneRead: true)
    let procRoot: String
    var previous: Snapshot?

    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
    }

    static let resources = ["cpu", "memory", "io"]

    struct Line: Equatable {
        var resource: String
        var kind: String
        var avg10: Double
        /// Stalled time, microseconds since boot.
        var total: UInt64
    }

    typealias Snapshot = [Line]

    static func parse(_ bytes: [UInt8], resource: String) throws -> [Line] {
        var out: [Line] = []
        try forEachLine(bytes) { fields in
            let kind = fields[0]
            guard kind.equals("some") || kind.equals("full") else { return }
            var avg10: Double?
            var total: UInt64?
            for field in fields.dropFirst() {
                if field.hasPrefix("avg10=") { avg10 = field.dropFirst(6).number }
                if field.hasPrefix("total=") { total = field.dropFirst(6).integer }
            }
            guard let avg10, let total else { throw SensorError("a line of /proc/pressure/\(resource) lacks avg10 or total") }
            out.append(Line(resource: resource, kind: kind.equals("some") ? "some" : "full", avg10: avg10, total: total))
        }
        return out
    }

    func snapshot() throws -> Snapshot {
        var out: [Line] = []
        for resource in Self.resources {
            out += try Self.parse(try files.read(procRoot + "/pressure/" + resource), resource: resource)
        }
        return out
    }

    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double, counters: Bool) -> [Reading] {
        var out: [Reading] = []
        // The machine-wide CPU "full" line is always zero (the kernel leaves it undefined and
        // writes 0 since 5.13, only for the format's sake): no series of it.
        for line in new where !(line.resource == "cpu" && line.kind == "full") {
            let labels = [Reading.Label("kind", line.kind), .init("resource", line.resource)]
            // The kernel writes hundredths of a percent: as 57 / 10,000 (rounded once), the
            // share is the ratio a compacted block keeps in a byte or two; 0.57 / 100 would be
            // rounded twice, and off by a bit.
            out.append(Reading("system.pressure.avg10", labels, (line.avg10 * 100).rounded() / 10_000))
            if counters { out.append(Reading.cumulative("system.pressure.stall", labels, Double(line.total) / 1_000_000)) }
            if let before = old?.first(where: { $0.resource == line.resource && $0.kind == line.kind }),
                let perSecond = rate(before.total, line.total, seconds)
            {
                out.append(Reading("system.pressure.stall.rate", labels, perSecond / 1_000_000))
            }
        }
        return out
    }
}
