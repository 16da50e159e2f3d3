/// Network interfaces (`/proc/net/dev`): bytes, packets, errors and drops per second, each way;
/// and from /sys/class/net, whether each is up, its speed and its MTU. Physical interfaces only by
/// default (those with a `device` link under /sys/class/net): virtual ones (bridges, veths, ifb)
/// would count the same traffic twice; the loopback on request (`--network-loopback`: NCCL's
/// and a data loader's traffic on one machine go through it).
public final class NetworkSensor: CounterSensor {
    public let name = "network"
    let files = OpenFiles<String>()
    /// Each interface's sysfs attributes: a record each, written out whole at the first read.
    let linkFiles = OpenFiles<String>(wholeInOneRead: true)
    let procRoot: String
    let sysRoot: String
    let includeVirtual: Bool
    let includeLoopback: Bool
    var previous: Snapshot?

    public init(procRoot: String = "/proc", sysRoot: String = "/sys", includeVirtual: Bool = false, includeLoopback: Bool = false) {
        self.procRoot = procRoot
        self.sysRoot = sysRoot
        self.includeVirtual = includeVirtual
        self.includeLoopback = includeLoopback
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
        let chosen = all.filter { physical[$0.key] == true || (includeLoopback && $0.key == "lo") }
        // In a container's network namespace every interface is virtual (a veth): then count
        // them all but the loopback (unless asked for).
        return chosen.allSatisfy({ $0.key == "lo" }) ? all.filter { $0.key != "lo" || includeLoopback } : chosen
    }

    /// The counters' names (the rates': with `.rate`), and where each sits in both directions'
    /// columns.
    static let columns = [
        ("system.network.io", 0), ("system.network.packet.count", 1), ("system.network.errors", 2), ("system.network.packet.dropped", 3),
    ]

    /// Whether each interface is up (`operstate`; the loopback says "unknown" and counts as up),
    /// its speed (Mb/s in the file; not asked while the link is down, when reading it fails; none
    /// for the loopback and virtual ones) and its MTU.
    func link(_ device: String) -> [Reading] {
        let base = sysRoot + "/class/net/" + device
        let labels = [Reading.Label("network.interface.name", device)]
        var out: [Reading] = []
        let state = linkFiles.text(base + "/operstate")
        if let state {
            out.append(Reading("system.network.interface.up", labels, state == "up" || (device == "lo" && state == "unknown") ? 1 : 0))
        }
        if state != "down" && state != "lowerlayerdown" && state != "notpresent", let megabits = linkFiles.number(base + "/speed"), megabits > 0 {
            out.append(Reading("system.network.interface.speed", labels, megabits * 125_000))
        }
        if let mtu = linkFiles.number(base + "/mtu") { out.append(Reading("system.network.interface.mtu", labels, mtu)) }
        return out
    }

    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double, counters: Bool) -> [Reading] {
        var out: [Reading] = []
        for device in new.keys.sorted() { out += link(device) }
        // The counters as they stand.
        for (device, figures) in new.sorted(by: { $0.key < $1.key }) where counters {
            for (direction, now) in [("receive", figures.receive), ("transmit", figures.transmit)] {
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
