// BoxcarExposition: what monitoring stacks read of the agent. The one table from the agent's
// series names to exposition names (ExpositionNames.swift), the writer of the Prometheus text
// format 0.0.4 and of OpenMetrics 1.0 (this file), and the page of the machine's last tick
// (MachinePage.swift). No I/O: the HTTP server and remote write sit above it.

import BoxcarSensors

/// The two formats a scraper may ask for.
public enum ExpositionFormat: Sendable {
    /// The Prometheus text format, version 0.0.4: what every scraper reads.
    case prometheusText
    /// OpenMetrics 1.0.0 text: counters as families without `_total`, units, `# EOF`.
    case openMetrics

    public var contentType: String {
        switch self {
        case .prometheusText: "text/plain; version=0.0.4; charset=utf-8"
        case .openMetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8"
        }
    }

    /// OpenMetrics when the scraper's `Accept` header lists it (Prometheus sends it first, with
    /// the text format as a fallback), else the text format.
    public static func negotiate(accept: String?) -> ExpositionFormat {
        guard let accept else { return .prometheusText }
        for part in accept.split(separator: ",") {
            let mediaType = part.split(separator: ";").first?.trimmingSpaces ?? ""
            if mediaType.lowercased() == "application/openmetrics-text" {
                // "q=0" says the scraper will not take it.
                let refused = part.split(separator: ";").dropFirst().contains { $0.trimmingSpaces.replacingSpaces == "q=0" }
                if !refused { return .openMetrics }
            }
        }
        return .prometheusText
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var out = self
        while out.first == " " || out.first == "\t" { out.removeFirst() }
        while out.last == " " || out.last == "\t" { out.removeLast() }
        return out
    }

    fileprivate var replacingSpaces: String { filter { $0 != " " } }
}

/// How a family is typed.
public enum FamilyType: String, Sendable {
    case gauge, counter, histogram
    /// A value of 1 whose labels are the information (OpenMetrics' info type; a gauge in the
    /// text format).
    case info
}

/// One metric family: its name as written (a counter's without `_total`, an info's without
/// `_info`), its type, its unit (the name's last word, as OpenMetrics asks) and its help.
public struct Family: Sendable, Equatable {
    public var name: String
    public var type: FamilyType
    public var unit: String?
    public var help: String

    public init(_ name: String, _ type: FamilyType, unit: String? = nil, help: String) {
        self.name = name
        self.type = type
        self.unit = unit
        self.help = help
    }

    /// The name its samples carry in the text format (`x_total`, `x_info`; histograms' buckets
    /// add their own suffixes).
    public var sampleName: String {
        switch type {
        case .counter: name + "_total"
        case .info: name + "_info"
        case .gauge, .histogram: name
        }
    }
}

/// Writes a page of families into bytes. Each family's samples must follow its `family` call
/// (both formats want a family's samples together); `finish` ends the page.
///
/// It writes bytes, not strings: a scrape is meant to cost well under a millisecond of CPU.
public struct ExpositionWriter {
    public let format: ExpositionFormat
    public private(set) var bytes: [UInt8] = []

    public init(format: ExpositionFormat, capacity: Int = 16 << 10) {
        self.format = format
        bytes.reserveCapacity(capacity)
    }

    /// The family's `# HELP`, `# TYPE` and (OpenMetrics) `# UNIT` lines.
    public mutating func family(_ family: Family) {
        let name: String
        let type: String
        switch format {
        case .prometheusText:
            name = family.sampleName
            type = family.type == .info ? "gauge" : family.type.rawValue
        case .openMetrics:
            name = family.name
            type = family.type.rawValue
        }
        append("# HELP ")
        append(name)
        bytes.append(UInt8(ascii: " "))
        appendEscaped(family.help, quotes: format == .openMetrics)
        append("\n# TYPE ")
        append(name)
        bytes.append(UInt8(ascii: " "))
        append(type)
        bytes.append(UInt8(ascii: "\n"))
        if format == .openMetrics, let unit = family.unit {
            append("# UNIT ")
            append(name)
            bytes.append(UInt8(ascii: " "))
            append(unit)
            bytes.append(UInt8(ascii: "\n"))
        }
    }

    /// One sample of `family`: its name (plus `suffix` for a histogram's `_bucket`, `_sum` and
    /// `_count`), its labels in the order given (names with dots written with underscores),
    /// then `extra` labels, and its value.
    public mutating func sample(
        _ family: Family, suffix: String = "", labels: [(name: String, value: String)] = [], value: Double
    ) {
        append(family.sampleName)
        if !suffix.isEmpty { append(suffix) }
        if !labels.isEmpty {
            bytes.append(UInt8(ascii: "{"))
            for (index, label) in labels.enumerated() { appendLabel(label.name, label.value, first: index == 0) }
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(UInt8(ascii: " "))
        appendValue(value)
        bytes.append(UInt8(ascii: "\n"))
    }

    /// Families written before (a page kept from an earlier call, in the same format).
    public mutating func append(written: [UInt8]) {
        bytes.append(contentsOf: written)
    }

    /// One sample of a machine series: `experiment_id` first when given, then the reading's
    /// labels. (The page's hot path: no array of label pairs is made for it.)
    public mutating func sample(_ family: Family, experiment: String?, labels: [Reading.Label], value: Double) {
        append(family.sampleName)
        if experiment != nil || !labels.isEmpty {
            bytes.append(UInt8(ascii: "{"))
            if let experiment { appendLabel("experiment_id", experiment, first: true) }
            for (index, label) in labels.enumerated() { appendLabel(label.name, label.value, first: index == 0 && experiment == nil) }
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(UInt8(ascii: " "))
        appendValue(value)
        bytes.append(UInt8(ascii: "\n"))
    }

    /// The page; OpenMetrics ends with `# EOF`.
    public mutating func finish() -> [UInt8] {
        if format == .openMetrics { append("# EOF\n") }
        return bytes
    }

    // MARK: bytes

    private mutating func append(_ string: String) {
        bytes.append(contentsOf: string.utf8)
    }

    /// `name="value"`, after a comma unless it is the first.
    private mutating func appendLabel(_ name: String, _ value: String, first: Bool) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        appendLabelName(name)
        append("=\"")
        appendEscaped(value, quotes: true)
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func appendLabelName(_ name: String) {
        Self.appendLabelName(name, to: &bytes)
    }

    /// A label name as Prometheus takes it (remote write's labels too).
    public static func labelName(_ name: String) -> String {
        var out: [UInt8] = []
        appendLabelName(name, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Dots (OpenTelemetry's attribute names) become underscores; anything else outside
    /// `[a-zA-Z0-9_]` too, and a leading digit gets an underscore before it.
    static func appendLabelName(_ name: String, to bytes: inout [UInt8]) {
        for (index, byte) in name.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"):
                bytes.append(byte)
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if index == 0 { bytes.append(UInt8(ascii: "_")) }
                bytes.append(byte)
            default:
                bytes.append(UInt8(ascii: "_"))
            }
        }
    }

    /// Backslash and newline escaped (and double quotes in label values and OpenMetrics help).
    private mutating func appendEscaped(_ text: String, quotes: Bool) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): append("\\\\")
            case UInt8(ascii: "\n"): append("\\n")
            case UInt8(ascii: "\"") where quotes: append("\\\"")
            default: bytes.append(byte)
            }
        }
    }

    /// Integers as digits (most values are byte counts), others as Swift prints them (shortest
    /// round-tripping form, which both formats' parsers read), and NaN, +Inf, -Inf.
    private mutating func appendValue(_ value: Double) {
        if value.isNaN {
            append("NaN")
        } else if value.isInfinite {
            append(value > 0 ? "+Inf" : "-Inf")
        } else if value == value.rounded(), abs(value) < 1e15 {
            var integer = Int64(value)
            if integer < 0 {
                bytes.append(UInt8(ascii: "-"))
                integer = -integer
            }
            var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            var count = 0
            withUnsafeMutableBytes(of: &digits) { buffer in
                repeat {
                    buffer[count] = UInt8(ascii: "0") + UInt8(integer % 10)
                    integer /= 10
                    count += 1
                } while integer > 0
                for index in stride(from: count - 1, through: 0, by: -1) { bytes.append(buffer[index]) }
            }
        } else {
            append(value.description)
        }
    }
}
