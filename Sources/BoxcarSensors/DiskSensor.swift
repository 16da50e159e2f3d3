/// Whole disks (`/proc/diskstats`, those listed in /sys/block; loop and ram devices skipped):
/// bytes and operations per second each way, the busy fraction and the average queue length;
/// and each disk's model, serial number and given name as the labels of `system.disk.info`,
/// from libudev where it is loaded, else (and for what udev does not know) from /sys.
public final class DiskSensor: CounterSensor {
    public let name = "disk"
    let files = OpenFiles<String>()
    let procRoot: String
    let sysRoot: String
    let udev: Udev?
    let sysfs: SysfsDiskIdentities
    var previous: Snapshot?

    public init(procRoot: String = "/proc", sysRoot: String = "/sys", udev: Udev? = nil) {
        self.procRoot = procRoot
        self.sysRoot = sysRoot
        self.udev = udev
        self.sysfs = SysfsDiskIdentities(sysRoot: sysRoot)
    }

    /// The counters after the device name, in the kernel's order: reads completed, reads merged,
    /// sectors read, ms reading, writes completed, writes merged, sectors written, ms writing,
    /// I/Os in progress, ms doing I/O, weighted ms doing I/O, then (Linux 4.18+) discards
    /// completed, discards merged, sectors discarded, ms discarding, …
    typealias Snapshot = [String: [UInt64]]

    static func parse(_ bytes: [UInt8]) -> Snapshot {
        var out: Snapshot = [:]
        forEachLine(bytes) { fields in
            guard fields.count >= 14 else { return }
            out[fields[2].string] = fields[3...].map { $0.integer ?? 0 }
        }
        return out
    }

    /// Each whole disk seen, with its identity; nil for the devices that are not whole disks.
    /// Asked of /sys and udev once per name, not every tick.
    var disks: [String: DiskIdentity?] = [:]

    func snapshot() throws -> Snapshot {
        let all = Self.parse(try files.read(procRoot + "/diskstats"))
        if all.keys.contains(where: { disks[$0] == nil }) {
            disks = Dictionary(uniqueKeysWithValues: all.keys.map { name in (name, disks[name] ?? identify(name)) })
        }
        return all.filter { disks[$0.key] != .some(nil) }
    }

    func identify(_ device: String) -> DiskIdentity? {
        guard !device.hasPrefix("loop"), !device.hasPrefix("ram"), exists(sysRoot + "/block/" + device) else { return nil }
        let fromSysfs = sysfs.identity(of: device)
        return udev.map { $0.identity(of: device).filled(from: fromSysfs) } ?? fromSysfs
    }

    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double, counters: Bool) -> [Reading] {
        var out: [Reading] = []
        for device in new.keys.sorted() {
            guard let identity = disks[device] ?? nil else { continue }
            var labels = [Reading.Label("system.device", device)]
            if let model = identity.model { labels.append(.init("model", model)) }
            if let name = identity.name { labels.append(.init("name", name)) }
            if let serial = identity.serial { labels.append(.init("serial", serial)) }
            out.append(Reading("system.disk.info", labels, 1))
        }
        for (device, figures) in new.sorted(by: { $0.key < $1.key }) where figures.count >= 11 && disks[device] != nil {
            out.append(Reading("system.disk.pending_operations", [.init("system.device", device)], Double(figures[8])))
            if counters { out += Self.counters(device: device, figures) }
        }
        guard let old else { return out }
        for (device, counters) in new.sorted(by: { $0.key < $1.key }) {
            guard let before = old[device], counters.count >= 11, before.count >= 11 else { continue }
            // diskstats counts 512-byte sectors whatever the device's own sector size.
            for (direction, operations, merged, sectors, milliseconds) in [("read", 0, 1, 2, 3), ("write", 4, 5, 6, 7)] {
                let labels = [Reading.Label("disk.io.direction", direction), .init("system.device", device)]
                if let perSecond = rate(before[sectors], counters[sectors], seconds) {
                    out.append(Reading("system.disk.io.rate", labels, perSecond * 512))
                }
                if let perSecond = rate(before[operations], counters[operations], seconds) {
                    out.append(Reading("system.disk.operations.rate", labels, perSecond))
                }
                if let perSecond = rate(before[merged], counters[merged], seconds) {
                    out.append(Reading("system.disk.merged.rate", labels, perSecond))
                }
                // Seconds spent per second: over operations.rate, the average time an operation took.
                if let perSecond = rate(before[milliseconds], counters[milliseconds], seconds) {
                    out.append(Reading("system.disk.operation_time.rate", labels, perSecond / 1000))
                }
            }
            let labels = [Reading.Label("system.device", device)]
            if let busy = rate(before[9], counters[9], seconds) {
                out.append(Reading("system.disk.busy", labels, min(busy / 1000, 1)))
            }
            if let queue = rate(before[10], counters[10], seconds) {
                out.append(Reading("system.disk.queue_length", labels, queue / 1000))
            }
            if counters.count >= 12, before.count >= 12, let discards = rate(before[11], counters[11], seconds) {
                out.append(Reading("system.disk.discards.rate", labels, discards))
            }
        }
        return out
    }

    /// A disk's counters as they stand, as node_exporter gives them: bytes, operations and merged
    /// operations each way, the time spent on each (ms in the file), the time the disk was busy,
    /// the busy time weighted by the requests in flight (whose rate is the average queue length),
    /// and discards (TRIM) completed where the kernel counts them.
    static func counters(device: String, _ counters: [UInt64]) -> [Reading] {
        var out: [Reading] = []
        for (direction, operations, sectors, milliseconds) in [("read", 0, 2, 3), ("write", 4, 6, 7)] {
            let labels = [Reading.Label("disk.io.direction", direction), .init("system.device", device)]
            out.append(Reading.cumulative("system.disk.io", labels, Double(counters[sectors]) * 512))
            out.append(Reading.cumulative("system.disk.operations", labels, Double(counters[operations])))
            out.append(Reading.cumulative("system.disk.merged", labels, Double(counters[operations + 1])))
            out.append(Reading.cumulative("system.disk.operation_time", labels, Double(counters[milliseconds]) / 1000))
        }
        let labels = [Reading.Label("system.device", device)]
        out.append(Reading.cumulative("system.disk.io_time", labels, Double(counters[9]) / 1000))
        out.append(Reading.cumulative("system.disk.weighted_io_time", labels, Double(counters[10]) / 1000))
        if counters.count >= 12 { out.append(Reading.cumulative("system.disk.discards", labels, Double(counters[11]))) }
        return out
    }
}
