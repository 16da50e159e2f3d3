import BoxcarModel
import FoundationEssentials

/// Aligned columns for people: a header, then one row per record, each column as wide as its
/// widest cell.
func table(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
    }
    func line(_ cells: [String]) -> String {
        var out = ""
        for (index, cell) in cells.enumerated() {
            let isLast = index == cells.count - 1
            out += isLast ? cell : cell + String(repeating: " ", count: widths[index] - cell.count + 2)
        }
        return out
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n")
}

/// JSON for machines. Integers stay exact (nanosecond wallclocks pass 2^53); NaN and infinities,
/// which JSON cannot hold, are written as the strings "NaN", "Infinity" and "-Infinity".
func encodeJSON(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
        positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// UTC, to the microsecond: 2026-11-26T23:49:18.123456Z.
func timestamp(_ nanoseconds: Nanoseconds) -> String {
    let seconds = Double(nanoseconds) / 1e9
    return Date(timeIntervalSince1970: seconds).formatted(
        Date.ISO8601FormatStyle(includingFractionalSeconds: true))
}

// MARK: Records as the CLI prints them

struct ExperimentRecord: Encodable {
    var id, name, namespace, owner, framework, externalID, createdAt: String
    var createdAtNs: Int64

    enum CodingKeys: String, CodingKey {
        case id, name, namespace, owner, framework
        case externalID = "external_id", createdAt = "created_at", createdAtNs = "created_at_ns"
    }

    init(_ experiment: Experiment) {
        id = experiment.id
        name = experiment.name
        namespace = experiment.namespace
        owner = experiment.owner
        framework = "\(experiment.framework)"
        externalID = experiment.externalID
        createdAt = timestamp(experiment.createdAt)
        createdAtNs = experiment.createdAt
    }
}

/// One metric point: `type` is float, string or bytes (bytes as base64).
struct PointRecord: Encodable {
    var key: String
    var step: UInt64
    var wallclock: Int64
    var type: String
    var value: Value

    enum Value: Encodable {
        case number(Double)
        case text(String)

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .number(let number): try container.encode(number)
            case .text(let text): try container.encode(text)
            }
        }

        var plain: String {
            switch self {
            case .number(let number): return "\(number)"
            case .text(let text): return text
            }
        }
    }

    init(key: String, point: MetricPoint) {
        self.key = key
        step = point.step
        wallclock = point.wallclock
        switch point.value {
        case .float(let number):
            type = "float"
            value = .number(number)
        case .string(let text):
            type = "string"
            value = .text(text)
        case .bytes(let bytes):
            type = "bytes"
            value = .text(Data(bytes).base64EncodedString())
        }
    }
}

struct EventRecord: Encodable {
    var name, source, wallclock, createdAt: String
    var wallclockNs: Int64
    var metadata: JSONValue

    enum CodingKeys: String, CodingKey {
        case name, source, wallclock, metadata
        case createdAt = "created_at", wallclockNs = "wallclock_ns"
    }

    init(_ event: Event) {
        name = event.name
        source = event.source
        wallclock = timestamp(event.wallclock)
        wallclockNs = event.wallclock
        createdAt = timestamp(event.createdAt)
        metadata = .object(event.metadata)
    }
}

struct FileRecordOutput: Encodable {
    var id, parentID, type, checksum, path, createdAt: String
    var uploaded: Bool
    var size: Int64?

    enum CodingKeys: String, CodingKey {
        case id, type, checksum, path, uploaded, size
        case parentID = "parent_id", createdAt = "created_at"
    }

    init(_ file: FileRecord) {
        id = file.id
        parentID = file.parentID
        type = "\(file.fileType)"
        checksum = file.checksum
        path = file.path
        createdAt = timestamp(file.createdAt)
        uploaded = file.blob != nil
        size = file.size
    }
}
