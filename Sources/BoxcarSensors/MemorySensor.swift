/// Memory and swap (`/proc/meminfo`), in bytes.
public final class MemorySensor: Sensor {
    public let name = "memory"
    let files = OpenFiles<String>(wholeInOneRead: true)
    let procRoot: String

    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
    }

    /// The fields of /proc/meminfo that readings come from (of some fifty).
    static let fields: [StaticString] = ["MemTotal", "MemAvailable", "Cached", "Buffers", "Dirty", "SwapTotal", "SwapFree"]

    /// Those fields of /proc/meminfo in bytes (the file says kB and means KiB).
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

    static func readings(_ info: [String: Double]) throws -> [Reading] {
        guard let total = info["MemTotal"], let available = info["MemAvailable"] else {
            throw SensorError("/proc/meminfo lacks MemTotal or MemAvailable (a kernel older than 3.14?)")
        }
        var out = [
            Reading("system.memory.limit", [], total),
            Reading("system.memory.usage", [.init("state", "used")], total - available),
            Reading("system.memory.usage", [.init("state", "available")], available),
        ]
        for (field, state) in [("Cached", "cached"), ("Buffers", "buffers"), ("Dirty", "dirty")] {
            if let value = info[field] { out.append(Reading("system.memory.usage", [.init("state", state)], value)) }
        }
        if let swapTotal = info["SwapTotal"], let swapFree = info["SwapFree"] {
            out.append(Reading("system.paging.limit", [], swapTotal))
            out.append(Reading("system.paging.usage", [.init("state", "used")], swapTotal - swapFree))
        }
        return out
    }

    public func sample(elapsed: Duration?) throws -> [Reading] {
        try Self.readings(Self.parse(try files.read(procRoot + "/meminfo")))
    }
}
