/// The kernel's open file handles, machine-wide, and their limit (`/proc/sys/fs/file-nr`:
/// allocated, unused (0 since Linux 2.6), maximum). A trainer whose data loaders each open
/// thousands of shards can run the machine out: "Too many open files" with every process under
/// its own limit.
public final class FileHandleSensor: Sensor {
    public let name = "filehandles"
    let files = OpenFiles<String>(wholeInOneRead: true)
    let procRoot: String

    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
    }

    static func readings(_ bytes: [UInt8]) throws -> [Reading] {
        var numbers: [UInt64] = []
        forEachLine(bytes) { fields in numbers = fields.compactMap(\.integer) }
        guard numbers.count == 3 else { throw SensorError("/proc/sys/fs/file-nr is not three numbers") }
        return [
            Reading("system.file_handles.usage", [], Double(numbers[0] - min(numbers[1], numbers[0]))),
            Reading("system.file_handles.limit", [], Double(numbers[2])),
        ]
    }

    public func sample(elapsed: Duration?) throws -> [Reading] {
        try Self.readings(try files.read(procRoot + "/sys/fs/file-nr"))
    }
}
