/// InfiniBand ports (`/sys/class/infiniband/<device>/ports/<port>/counters`): data sent and
/// received per second. The kernel counts port_xmit_data and port_rcv_data in 4-byte words.
public final class InfiniBandSensor: CounterSensor {
    public let name = "infiniband"
    let files = OpenFiles<String>(wholeInOneRead: true)
    let sysRoot: String
    var previous: Snapshot?

    public init(sysRoot: String = "/sys") {
        self.sysRoot = sysRoot
    }

    struct Port: Hashable {
        var device: String
        var port: String
    }

    typealias Snapshot = [Port: (transmitWords: UInt64, receiveWords: UInt64)]

    /// The ports and their counter files, listed again every `relistEvery` ticks (a port gone
    /// fails its reads until then; one added shows then): listing two levels of sysfs every tick
    /// cost more than reading the counters.
    private var ports: [(port: Port, transmit: String, receive: String)] = []
    private var ticksSinceListing = 0
    static let relistEvery = 60

    func snapshot() throws -> Snapshot {
        if ticksSinceListing == 0 { listPorts() }
        ticksSinceListing = (ticksSinceListing + 1) % Self.relistEvery
        var out: Snapshot = [:]
        for (port, transmit, receive) in ports {
            guard let transmit = files.integer(transmit), let receive = files.integer(receive) else { continue }
            out[port] = (transmit, receive)
        }
        return out
    }

    private func listPorts() {
        let root = sysRoot + "/class/infiniband"
        ports = directoryEntries(root).flatMap { device in
            directoryEntries(root + "/\(device)/ports").map { port in
                let counters = root + "/\(device)/ports/\(port)/counters"
                return (Port(device: device, port: port), counters + "/port_xmit_data", counters + "/port_rcv_data")
            }
        }
    }

    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double, counters wantsCounters: Bool) -> [Reading] {
        var out: [Reading] = []
        for (port, counters) in new.sorted(by: { ($0.key.device, $0.key.port) < ($1.key.device, $1.key.port) }) {
            func labels(_ direction: String) -> [Reading.Label] {
                [.init("network.interface.name", port.device), .init("network.io.direction", direction), .init("port", port.port)]
            }
            if wantsCounters {
                out.append(Reading.cumulative("system.network.io", labels("transmit"), Double(counters.transmitWords) * 4))
                out.append(Reading.cumulative("system.network.io", labels("receive"), Double(counters.receiveWords) * 4))
            }
            guard let before = old?[port] else { continue }
            if let words = rate(before.transmitWords, counters.transmitWords, seconds) {
                out.append(Reading("system.network.io.rate", labels("transmit"), words * 4))
            }
            if let words = rate(before.receiveWords, counters.receiveWords, seconds) {
                out.append(Reading("system.network.io.rate", labels("receive"), words * 4))
            }
        }
        return out
    }
}
