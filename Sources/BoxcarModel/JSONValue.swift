import FoundationEssentials

/// A metadata value: what `google.protobuf.Value` carries, and what JSON can say.
///
/// Metadata must come back exactly as it was sent, nested lists and objects included, so the
/// store keeps it as JSON text written and read through this one type.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSONValue {
    /// Compact JSON text with sorted keys, so equal values are equal text.
    public func jsonText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    public init(jsonText: String) throws {
        self = try JSONDecoder().decode(JSONValue.self, from: Data(jsonText.utf8))
    }

    /// Whether every number in the value is finite: JSON has no NaN or infinity.
    public var isFinite: Bool {
        switch self {
        case .null, .bool, .string: return true
        case .number(let value): return value.isFinite
        case .array(let values): return values.allSatisfy(\.isFinite)
        case .object(let values): return values.values.allSatisfy(\.isFinite)
        }
    }

    /// The depth of nesting: a scalar is 1.
    public var depth: Int {
        switch self {
        case .null, .bool, .number, .string: return 1
        case .array(let values): return 1 + (values.map(\.depth).max() ?? 0)
        case .object(let values): return 1 + (values.values.map(\.depth).max() ?? 0)
        }
    }
}

/// A map of metadata keys to values, as ModelBox's `Metadata` message carries it.
public typealias Metadata = [String: JSONValue]

extension Dictionary where Key == String, Value == JSONValue {
    public func jsonText() throws -> String { try JSONValue.object(self).jsonText() }

    public init(jsonText: String) throws {
        guard case .object(let object) = try JSONValue(jsonText: jsonText) else {
            throw ValidationError("metadata must be a JSON object")
        }
        self = object
    }
}
