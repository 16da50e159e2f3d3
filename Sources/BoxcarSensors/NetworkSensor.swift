/// Network interfaces (`/proc/net/dev`): bytes, packets, errors and drops per second, each way.
/// Physical interfaces only by default (those with a `device` link under /sys/class/net): the
/// loopback and virtual ones (bridges, veths, ifb) would count the same traffic twice.
public final class NetworkSensor: CounterSensor {
    public let name = "network"
    let files = OpenFiles<String>()
    let procRoot: String
    let sysRoot: String
    let includeVirtual: Bool
    var previous: Snapshot?

    public init(procRoot: String = "/proc", sysRoot: String = "/sys", includeVirtual: Bool = false) {
        self.procRoot = procRoot
        self.sysRoot = sysRoot
        self.includeVirtual = includeVirtual
    }

    struct Counters: Equatable {
        var receive: [UInt64]  // bytes packets errs drop fifo frame compressed multicast
        var transmit: [UInt64]  // bytes packets errs drop fifo colls carrier compressed
    }

    typealias Snapshot = [String: Counters]

    static func parse(_ bytes: [UInt8]) -> Snapshot {
        var out: Snapshot = [:]
        // "  eth0: 123 4 …": the name may touch its first number ("eth0:123") when that is long.
        forEachLine(bytes) { fields in
            guard let colon = fields[0].firstIndex(of: UInt8(ascii: ":")) else { return }
            let name = fields[0][..<colon]
            let first = fields[0][(colon + 1)...]
            let values = ((first.isEmpty ? [] : [first]) + fields.dropFirst()).compactMap(\.integer)
            guard !name.isEmpty, values.count >= 16 else { return }
            out[name.string] = Counters(receive: Array(values[0..<8]), transmit: Array(values[8..<16]))
        }
        return out
    }

    /// Whether each interface seen is physical: asked of /sys once per name, not every tick.
    var physical: [String: Bool] = [:]

    func snapshot() throws -> Snapshot {
        let all = Self.parse(try files.read(procRoot + "/net/dev"))
        guard !includeVirtual else { return all }
        if all.keys.contains(where: { physical[$0] == nil }) {
            physical = Dictionary(uniqueKeysWithValues: all.keys.map { name in
                (name, physical[name] ?? exists(sysRoot + "/class/net/" + name + "/device"))
            })
        }
        let chosen = all.filter { physical[$0.key] == true }
        // In a container's network namespace every interface is virtual (a veth): then count
        // them all but the loopback.
        return chosen.isEmpty ? all.filter { $0.key != "lo" } : chosen
    }

    /// The counters' names (the rates': with `.rate`), and where each sits in both directions'
    /// columns.
    static let columns = [
        ("system.network.io", 0), ("system.network.packet.count", 1), ("system.network.errors", 2), ("system.network.packet.dropped", 3),
    ]

    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double) -> [Reading] {
        var out: [Reading] = []
        // The counters as they stand.
        for (device, counters) in new.sorted(by: { $0.key < $1.key }) {
            for (direction, now) in [("receive", counters.receive), ("transmit", counters.transmit)] {
                let labels = [Reading.Label("network.interface.name", device), .init("network.io.direction", direction)]
                for (name, index) in Self.columns {
                    out.append(Reading.cumulative(name, labels, Double(now[index])))
                }
            }
        }
        guard let old else { return out }
        for (device, counters) in new.sorted(by: { $0.key < $1.key }) {
            guard let before = old[device] else { continue }
            for (direction, now, then) in [("receive", counters.receive, before.receive), ("transmit", counters.transmit, before.transmit)] {
                let labels = [Reading.Label("network.interface.name", device), .init("network.io.direction", direction)]
                for (name, index) in Self.columns {
                    if let perSecond = rate(then[index], now[index], seconds) {
                        out.append(Reading(name + ".rate", labels, perSecond))
                    }
                }
            }
        }
        return out
    }
}
