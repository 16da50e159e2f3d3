/// The machine's TCP and sockets (`/proc/net/snmp`, `/proc/net/sockstat`): segments
/// retransmitted per second (a congested or lossy fabric shows here before a collective times
/// out), TCP connections established, and sockets in use by protocol. `/proc/net` is the agent's
/// network namespace's: in a container, the container's.
public final class NetstatSensor: CounterSensor {
    public let name = "netstat"
    let files = OpenFiles<String>(wholeInOneRead: true)
    let procRoot: String
    var previous: Snapshot?

    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
    }

    struct Snapshot: Equatable {
        var retransmitted: UInt64?
        var established: UInt64?
        /// Sockets in use: all ("sockets: used"), then "tcp" and "udp".
        var sockets: [String: UInt64] = [:]
    }

    /// /proc/net/snmp: for each protocol a line of names and a line of values, both led by
    /// "Tcp:"; the value on the second line in the named column.
    static func parseSNMP(_ bytes: [UInt8], into snapshot: inout Snapshot) {
        var names: [ArraySlice<UInt8>]?
        forEachLine(bytes) { fields in
            guard fields.first.map({ $0.equals("Tcp:") }) == true else { return }
            guard let header = names else { names = fields; return }
            for (name, value) in zip(header, fields) {
                if name.equals("RetransSegs") { snapshot.retransmitted = value.integer }
                if name.equals("CurrEstab") { snapshot.established = value.integer }
            }
        }
    }

    /// /proc/net/sockstat: "sockets: used 10", "TCP: inuse 2 orphan 0 tw 959 …", "UDP: inuse 0 …".
    static func parseSockstat(_ bytes: [UInt8], into snapshot: inout Snapshot) {
        forEachLine(bytes) { fields in
            guard fields.count >= 3 else { return }
            let protocolName: String? =
                fields[0].equals("sockets:") && fields[1].equals("used") ? "all"
                : fields[0].equals("TCP:") && fields[1].equals("inuse") ? "tcp"
                : fields[0].equals("UDP:") && fields[1].equals("inuse") ? "udp" : nil
            if let protocolName, let count = fields[2].integer { snapshot.sockets[protocolName] = count }
        }
    }

    func snapshot() throws -> Snapshot {
        var snapshot = Snapshot()
        Self.parseSNMP(try files.read(procRoot + "/net/snmp"), into: &snapshot)
        Self.parseSockstat((try? files.read(procRoot + "/net/sockstat")) ?? [], into: &snapshot)
        guard snapshot.retransmitted != nil else { throw SensorError("\(procRoot)/net/snmp has no Tcp RetransSegs") }
        return snapshot
    }

    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double, counters: Bool) -> [Reading] {
        var out: [Reading] = []
        if let established = new.established { out.append(Reading("system.network.connection.count", [.init("network.connection.state", "established"), .init("network.transport", "tcp")], Double(established))) }
        for protocolName in ["all", "tcp", "udp"] {
            guard let count = new.sockets[protocolName] else { continue }
            out.append(Reading("system.network.sockets", protocolName == "all" ? [] : [.init("network.transport", protocolName)], Double(count)))
        }
        if let retransmitted = new.retransmitted {
            if counters { out.append(Reading.cumulative("system.network.tcp.retransmits", [], Double(retransmitted))) }
            if let before = old?.retransmitted, let perSecond = rate(before, retransmitted, seconds) {
                out.append(Reading("system.network.tcp.retransmits.rate", [], perSecond))
            }
        }
        return out
    }
}
