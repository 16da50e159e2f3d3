/// One value read from the machine: an OpenTelemetry-style name, its labels, the value.
public struct Reading: Sendable, Hashable {
    public var name: String
    /// Sorted by label name.
    public var labels: [Label]
    public var value: Double

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

    /// The metric key it is stored under: `system/<name>{label="value",…}`, labels sorted,
    /// no braces without labels; quotes and backslashes in values escaped as Prometheus does.
    public var seriesKey: String {
        guard !labels.isEmpty else { return "system/" + name }
        let inner = labels.map { label in
            var escaped = ""
            for character in label.value {
                switch character {
                case "\\": escaped += "\\\\"
                case "\"": escaped += "\\\""
                case "\n": escaped += "\\n"
                default: escaped.append(character)
                }
            }
            return "\(label.name)=\"\(escaped)\""
        }
        return "system/\(name){\(inner.joined(separator: ","))}"
    }
}
