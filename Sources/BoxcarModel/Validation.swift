/// Malformed or over-limit input: the message says what to change.
public struct ValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Well-formed input over a limit on what is stored (the series of one parent): RESOURCE_EXHAUSTED.
public struct LimitExceededError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A parent id, checkpoint or file that names no object.
public struct NotFoundError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Limits {
    /// A required name: not empty, valid UTF-8 (Swift strings are), no control characters.
    public func checkName(_ value: String, _ field: String, required: Bool = true) throws {
        if required && value.isEmpty { throw ValidationError("\(field) must not be empty") }
        try checkLength(value, field, max: maxNameBytes)
        if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            throw ValidationError("\(field) must not contain control characters")
        }
    }

    public func checkKey(_ value: String, _ field: String = "key") throws {
        if value.isEmpty { throw ValidationError("\(field) must not be empty") }
        try checkLength(value, field, max: maxKeyBytes)
        if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            throw ValidationError("\(field) must not contain control characters")
        }
    }

    /// Free text (paths, descriptions): any characters but NUL, which SQLite text would cut at.
    public func checkText(_ value: String, _ field: String) throws {
        try checkLength(value, field, max: maxTextBytes)
        if value.utf8.contains(0) { throw ValidationError("\(field) must not contain a NUL character") }
    }

    public func checkLength(_ value: String, _ field: String, max: Int) throws {
        let bytes = value.utf8.count
        if bytes > max {
            throw ValidationError("\(field) is \(bytes) bytes; the limit is \(max)")
        }
    }

    public func checkParentID(_ value: String, _ field: String = "parent_id") throws {
        if value.isEmpty { throw ValidationError("\(field) must not be empty") }
        try checkLength(value, field, max: maxNameBytes)
        if value.utf8.contains(0) { throw ValidationError("\(field) must not contain a NUL character") }
    }

    /// A parent a client writes under: any valid id but `host`, the agent's own for the machine's
    /// series, which a client's points would mix with (and which the sampler alone writes).
    public func checkWritableParentID(_ value: String, _ field: String = "parent_id") throws {
        try checkParentID(value, field)
        if value == "host" {
            throw ValidationError("\(field) host is the agent's own, for the machine's series; a client may not write under it")
        }
    }

    /// Checkpoint metrics: keys as metric keys, values finite.
    public func checkCheckpointMetrics(_ metrics: [String: Float]) throws {
        for (key, value) in metrics {
            try checkKey(key, "metrics key")
            guard value.isFinite else {
                throw ValidationError("checkpoint metric \(key) is \(value); only finite values can be stored")
            }
        }
    }

    /// Keys, finiteness, nesting and total size of a metadata map; returns its JSON text.
    @discardableResult
    public func checkMetadata(_ metadata: Metadata, _ field: String = "metadata") throws -> String {
        for (key, value) in metadata {
            try checkKey(key, "\(field) key")
            guard value.isFinite else {
                throw ValidationError("\(field)[\(key)] holds NaN or infinity, which JSON cannot carry")
            }
            guard value.depth <= maxMetadataDepth else {
                throw ValidationError("\(field)[\(key)] nests deeper than \(maxMetadataDepth) levels")
            }
        }
        let text = try metadata.jsonText()
        if text.utf8.count > maxMetadataBytes {
            throw ValidationError(
                "\(field) is \(text.utf8.count) bytes as JSON; the limit is \(maxMetadataBytes)")
        }
        return text
    }

    public func checkMetricValue(_ value: MetricValue, key: String) throws {
        switch value {
        case .float: return
        case .string(let text):
            if text.utf8.count > maxMetricValueBytes {
                throw ValidationError(
                    "value of \(key) is \(text.utf8.count) bytes; the limit is \(maxMetricValueBytes)")
            }
        case .bytes(let bytes):
            if bytes.count > maxMetricValueBytes {
                throw ValidationError(
                    "value of \(key) is \(bytes.count) bytes; the limit is \(maxMetricValueBytes)")
            }
        }
    }
}
