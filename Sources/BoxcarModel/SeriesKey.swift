/// A machine series' key read back into its parts: `system/<name>{label="value",…}` as the
/// sampler writes it (labels sorted; `\\`, `\"` and `\n` escaped in values; no braces without
/// labels). Remote write sends what the store holds, so it reads the name and labels back.
public struct SeriesKey: Sendable, Equatable {
    public var name: String
    public var labels: [(name: String, value: String)]

    public static func == (a: SeriesKey, b: SeriesKey) -> Bool {
        a.name == b.name && a.labels.map(\.name) == b.labels.map(\.name) && a.labels.map(\.value) == b.labels.map(\.value)
    }

    /// nil for a key that is not a machine series' (no `system/`, or labels that do not parse).
    public init?(parsing key: String) {
        let bytes = Array(key.utf8)
        let prefix = Array("system/".utf8)
        guard bytes.starts(with: prefix) else { return nil }
        var index = prefix.count
        let nameStart = index
        while index < bytes.count, bytes[index] != UInt8(ascii: "{") { index += 1 }
        name = String(decoding: bytes[nameStart..<index], as: UTF8.self)
        labels = []
        guard index < bytes.count else { return }
        guard bytes.last == UInt8(ascii: "}") else { return nil }
        index += 1
        let end = bytes.count - 1
        while index < end {
            let labelStart = index
            while index < end, bytes[index] != UInt8(ascii: "=") { index += 1 }
            guard index + 1 < end, bytes[index + 1] == UInt8(ascii: "\"") else { return nil }
            let labelName = String(decoding: bytes[labelStart..<index], as: UTF8.self)
            index += 2
            var value: [UInt8] = []
            while index < end, bytes[index] != UInt8(ascii: "\"") {
                if bytes[index] == UInt8(ascii: "\\"), index + 1 < end {
                    index += 1
                    value.append(bytes[index] == UInt8(ascii: "n") ? UInt8(ascii: "\n") : bytes[index])
                } else {
                    value.append(bytes[index])
                }
                index += 1
            }
            guard index < end else { return nil }  // no closing quote
            labels.append((labelName, String(decoding: value, as: UTF8.self)))
            index += 1
            if index < end {
                guard bytes[index] == UInt8(ascii: ",") else { return nil }
                index += 1
            }
        }
    }
}

extension SeriesKey {
    public init(name: String, labels: [(name: String, value: String)]) {
        self.name = name
        self.labels = labels.sorted { $0.name < $1.name }
    }

    /// The key as the sampler writes it: labels sorted by name, values escaped.
    public var key: String {
        guard !labels.isEmpty else { return "system/" + name }
        func escaped(_ value: String) -> String {
            value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
        }
        let sorted = labels.sorted { $0.name < $1.name }
        return "system/" + name + "{" + sorted.map { "\($0.name)=\"\(escaped($0.value))\"" }.joined(separator: ",") + "}"
    }
}
