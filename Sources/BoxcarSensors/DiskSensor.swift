/// Whole disks (`/proc/diskstats`, those listed in /sys/block; loop and ram devices skipped):
/// bytes and operations per second each way, the busy fraction and the average queue length.
public final class DiskSensor: CounterSensor {
    public let name = "disk"
    let files = OpenFiles<String>()
    let procRoot: String
    let sysRoot: String
    var previous: Snapshot?

    public init(procRoot: String = "/proc", sysRoot: String = "/sys") {
        self.procRoot = procRoot
        self.sysRoot = sysRoot
    }

    /// The counters after the device name, in the kernel's order: reads completed, reads merged,
    /// sectors read, ms reading, writes completed, writes merged, sectors written, ms writing,
    /// I/Os in progress, ms doing I/O, weighted ms doing I/O, …
    typealias Snapshot = [String: [UInt64]]

    static func parse(_ bytes: [UInt8]) -> Snapshot {
        var out: Snapshot = [:]
        for fields in lines(bytes) where fields.count >= 14 {
            out[String(fields[2])] = fields[3...].map { UInt64($0) ?? 0 }
        }
        return out
    }

    /// Whether each device seen is a whole disk: asked of /sys once per name, not every tick.
    var wholeDisk: [String: Bool] = [:]

    func snapshot() throws -> Snapshot {
        let all = Self.parse(try files.read(procRoot + "/diskstats"))
        if all.keys.contains(where: { wholeDisk[$0] == nil }) {
            wholeDisk = Dictionary(uniqueKeysWithValues: all.keys.map { name in
                (name, wholeDisk[name] ?? (!name.hasPrefix("loop") && !name.hasPrefix("ram") && exists(sysRoot + "/block/" + name)))
            })
        }
        return all.filter { wholeDisk[$0.key] == true }
    }

    func readings(from old: Snapshot?, to new: Snapshot, seconds: Double) -> [Reading] {
        guard let old else { return [] }
        var out: [Reading] = []
        for (device, counters) in new.sorted(by: { $0.key < $1.key }) {
            guard let before = old[device], counters.count >= 11, before.count >= 11 else { continue }
            // diskstats counts 512-byte sectors whatever the device's own sector size.
            for (direction, operations, sectors) in [("read", 0, 2), ("write", 4, 6)] {
                let labels = [Reading.Label("device", device), .init("direction", direction)]
                if let perSecond = rate(before[sectors], counters[sectors], seconds) {
                    out.append(Reading("system.disk.io", labels, perSecond * 512))
                }
                if let perSecond = rate(before[operations], counters[operations], seconds) {
                    out.append(Reading("system.disk.operations", labels, perSecond))
                }
            }
            let labels = [Reading.Label("device", device)]
            if let busy = rate(before[9], counters[9], seconds) {
                out.append(Reading("system.disk.busy", labels, min(busy / 1000, 1)))
            }
            if let queue = rate(before[10], counters[10], seconds) {
                out.append(Reading("system.disk.queue_length", labels, queue / 1000))
            }
        }
        return out
    }
}
