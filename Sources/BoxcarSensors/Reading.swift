/// One value read from the machine: an OpenTelemetry-style name, its labels, the value.
public struct Reading: Sendable, Hashable {
    public var name: String
    /// Sorted by label name.
    public var labels: [Label]
    public var value: Double
    /// A counter as it stands, read beside the rate the agent stores for it (`system.cpu.time`
    /// beside `system.cpu.utilization`): the exporter's page shows it, and it is stored only
    /// while remote write, which sends it, is on (each stored series costs the idle agent a row
    /// a tick).
    public var isCumulative = false

    public struct Label: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(_ name: String, _ labels: [Label] = [], _ value: Double) {
        self.name = name
        // Most come sorted already: checking is cheaper than sorting into a new array.
        let sorted = zip(labels, labels.dropFirst()).allSatisfy { $0.name <= $1.name }
        self.labels = sorted ? labels : labels.sorted { $0.name < $1.name }
        self.value = value
    }

    /// With labels known to be sorted by name (made once by a sensor and kept).
    init(_ name: String, sorted labels: [Label], _ value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }

    /// A counter as it stands beside its stored rate (`isCumulative`).
    public static func cumulative(_ name: String, _ labels: [Label] = [], _ value: Double) -> Reading {
        var reading = Reading(name, labels, value)
        reading.isCumulative = true
        return reading
    }

    static func cumulative(_ name: String, sorted labels: [Label], _ value: Double) -> Reading {
        var reading = Reading(name, sorted: labels, value)
        reading.isCumulative = true
        return reading
    }

    /// The metric key it is stored under: `system/<name>{label="value",…}`, labels sorted,
    /// no braces without labels; quotes and backslashes in values escaped as Prometheus does.
    /// Escaped on the UTF-8 bytes (the three are ASCII, never part of a longer character): the
    /// agent makes a key for every reading of every tick.
    public var seriesKey: String {
        guard !labels.isEmpty else { return "system/" + name }
        var key: [UInt8] = []
        key.reserveCapacity(16 + name.utf8.count + labels.count * 32)
        key += "system/".utf8
        key += name.utf8
        for (index, label) in labels.enumerated() {
            key.append(index == 0 ? UInt8(ascii: "{") : UInt8(ascii: ","))
            key += label.name.utf8
            key += #"=""#.utf8
            for byte in label.value.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): key += #"\\"#.utf8
                case UInt8(ascii: "\""): key += #"\""#.utf8
                case UInt8(ascii: "\n"): key += #"\n"#.utf8
                default: key.append(byte)
                }
            }
            key.append(UInt8(ascii: "\""))
        }
        key.append(UInt8(ascii: "}"))
        return String(decoding: key, as: UTF8.self)
    }
}
