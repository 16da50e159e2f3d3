/// Memory and swap (`/proc/meminfo`), in bytes.
public final class MemorySensor: Sensor {
    public let name = "memory"
    let files = OpenFiles<String>(wholeInOneRead: true)
    let procRoot: String

    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
    }

    /// The fields of /proc/meminfo that readings come from (of some fifty).
    static let fields: [StaticString] = [
        "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SReclaimable", "SUnreclaim", "Shmem", "Dirty",
        "Committed_AS", "SwapTotal", "SwapFree", "HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp",
        "Hugepagesize",
    ]

    /// Those fields of /proc/meminfo, sizes in bytes (the file says kB and means KiB), huge pages
    /// as counts.
    static func parse(_ bytes: [UInt8]) -> [String: Double] {
        var out: [String: Double] = [:]
        forEachLine(bytes) { line in
            guard line.count >= 2, let value = line[1].number else { return }
            let name = line[0].dropLast(line[0].last == UInt8(ascii: ":") ? 1 : 0)
            guard fields.contains(where: { name.equals($0) }) else { return }
            let unit = line.count >= 3 && line[2].equals("kB") ? 1024.0 : 1
            out[name.string] = value * unit
        }
        return out
    }

    /// `system.memory.usage` in states that sum to the limit, as `free` counts them: free, buffers,
    /// cached (the page cache and reclaimable slab, `free`'s buff/cache less buffers) and used (the
    /// rest). What the kernel could hand out without swapping (`MemAvailable`) is apart, as
    /// OpenTelemetry has it: `system.memory.linux.available`.
    static func readings(_ info: [String: Double]) throws -> [Reading] {
        guard let total = info["MemTotal"], let free = info["MemFree"], let available = info["MemAvailable"] else {
            throw SensorError("/proc/meminfo lacks MemTotal, MemFree or MemAvailable (a kernel older than 3.14?)")
        }
        let buffers = info["Buffers"] ?? 0
        let cached = (info["Cached"] ?? 0) + (info["SReclaimable"] ?? 0)
        // Below 0 only by the fields' read not being one instant; NaN (a garbled file) stays NaN,
        // for the sampler to drop, where max(0, …) would make it 0.
        let used = total - free - buffers - cached
        var out = [
            Reading("system.memory.limit", [], total),
            Reading("system.memory.usage", [.init("system.memory.state", "used")], used < 0 ? 0 : used),
            Reading("system.memory.usage", [.init("system.memory.state", "free")], free),
            Reading("system.memory.usage", [.init("system.memory.state", "buffers")], buffers),
            Reading("system.memory.usage", [.init("system.memory.state", "cached")], cached),
            Reading("system.memory.linux.available", [], available),
        ]
        if let shared = info["Shmem"] { out.append(Reading("system.memory.linux.shared", [], shared)) }
        if let reclaimable = info["SReclaimable"], let unreclaimable = info["SUnreclaim"] {
            out.append(Reading("system.memory.linux.slab.usage", [.init("system.memory.linux.slab.state", "reclaimable")], reclaimable))
            out.append(Reading("system.memory.linux.slab.usage", [.init("system.memory.linux.slab.state", "unreclaimable")], unreclaimable))
        }
        if let dirty = info["Dirty"] { out.append(Reading("system.memory.linux.dirty", [], dirty)) }
        if let committed = info["Committed_AS"] { out.append(Reading("system.memory.linux.committed", [], committed)) }
        // Huge pages only where some are set aside (most machines have none: no series).
        if let pages = info["HugePages_Total"], pages > 0, let freePages = info["HugePages_Free"] {
            out.append(Reading("system.memory.linux.hugepages.limit", [], pages))
            out.append(Reading("system.memory.linux.hugepages.usage", [.init("system.memory.linux.hugepages.state", "used")], pages - freePages))
            out.append(Reading("system.memory.linux.hugepages.usage", [.init("system.memory.linux.hugepages.state", "free")], freePages))
            if let reserved = info["HugePages_Rsvd"] { out.append(Reading("system.memory.linux.hugepages.reserved", [], reserved)) }
            if let surplus = info["HugePages_Surp"] { out.append(Reading("system.memory.linux.hugepages.surplus", [], surplus)) }
            if let size = info["Hugepagesize"] { out.append(Reading("system.memory.linux.hugepages.page_size", [], size)) }
        }
        if let swapTotal = info["SwapTotal"], let swapFree = info["SwapFree"] {
            out.append(Reading("system.paging.limit", [], swapTotal))
            out.append(Reading("system.paging.usage", [.init("system.paging.state", "used")], swapTotal - swapFree))
            out.append(Reading("system.paging.usage", [.init("system.paging.state", "free")], swapFree))
        }
        return out
    }

    public func sample(elapsed: Duration?) throws -> [Reading] {
        try Self.readings(Self.parse(try files.read(procRoot + "/meminfo")))
    }
}
