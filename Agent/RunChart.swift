import BoxcarCharts
import BoxcarModel
import BoxcarSensors
import Foundation

/// A run's series and events as a chart: what `boxcar plot` draws and the agent's page shows.
/// The trainer's own metrics each get a panel (their unit is not known); the machine's series
/// (`system/…`) share panels by unit or by name; the run's events are marks across them all.
struct RunChart {
    /// How the machine's series are put in panels.
    enum Grouping {
        /// One panel per unit: CPU and GPU utilization side by side (`boxcar plot`).
        case unit
        /// One panel per metric name: every GPU's power on one (the page's chosen charts).
        case name
    }

    var axis: Chart.Axis = .time
    /// A time (RFC 3339) or a span back from the last point (30s, 10m, 2h, 1d); nil: no bound.
    var since: String?
    var until: String?
    var grouping: Grouping = .unit

    /// The chart: each series' float points in the window, on the chosen axis, in its panel.
    func chart(title: String, series: [(key: String, columns: MetricColumns)], events: [Event]) throws -> Chart {
        let last = series.compactMap { $0.columns.wallclocks.lazy.map(Self.nanoseconds).max() }.max() ?? 0
        let lower = try since.map { try Self.time($0, last: last) } ?? .min
        let upper = try until.map { try Self.time($0, last: last) } ?? .max
        // The trainer's step at each time it logged, for placing the machine's points by step.
        let clock = StepClock(series.filter { !Self.isMachine($0.key) }.map(\.columns))
        if axis == .step && clock.isEmpty && series.contains(where: { Self.isMachine($0.key) }) {
            throw CLIError("the step axis places the machine's series at the trainer's steps: add a key of the trainer's own, or use the time axis")
        }
        var trainer: [Chart.Panel] = []
        var machine: [(group: String, unit: String, series: [Chart.Series])] = []
        for (key, columns) in series {
            var xs: [Double] = []
            var ys: [Double] = []
            for index in 0..<columns.count where columns.nonFloat[index] == nil {
                let wallclock = Self.nanoseconds(columns.wallclocks[index])
                guard wallclock >= lower && wallclock <= upper else { continue }
                let x: Double?
                switch axis {
                case .time: x = Double(wallclock) / 1e9
                case .step: x = Self.isMachine(key) ? clock.step(at: wallclock) : Double(columns.steps[index])
                }
                guard let x else { continue }
                xs.append(x)
                ys.append(columns.values[index])
            }
            // Read in step order; by time or placed by step they may not be.
            if zip(xs, xs.dropFirst()).contains(where: { $0 > $1 }) {
                let order = xs.indices.sorted { xs[$0] < xs[$1] }
                (xs, ys) = (order.map { xs[$0] }, order.map { ys[$0] })
            }
            guard !xs.isEmpty else { continue }
            guard Self.isMachine(key) else {
                trainer.append(Chart.Panel(title: key, unit: "", series: [Chart.Series(label: key, key: key, xs: xs, ys: ys)]))
                continue
            }
            let name = Self.machineName(key)
            let unit = MachineMetrics.byName[name]?.unit ?? ""
            let group = grouping == .unit ? unit : name
            // Grouped by name, the panel's title names the metric: the legend says only which line.
            let line = Chart.Series(label: Self.legend(key, naming: grouping == .unit), key: key, xs: xs, ys: ys)
            if let at = machine.firstIndex(where: { $0.group == group }) {
                machine[at].series.append(line)
            } else {
                machine.append((group, unit, [line]))
            }
        }
        guard !trainer.isEmpty || !machine.isEmpty else {
            throw CLIError("the keys matched have no numeric point in the window asked for")
        }
        let marks = events.compactMap { event -> Chart.Mark? in
            let wallclock = Self.nanoseconds(event.wallclock)
            guard wallclock >= lower && wallclock <= upper else { return nil }
            let x = axis == .time ? Double(wallclock) / 1e9 : clock.step(at: wallclock)
            return x.map { Chart.Mark(x: $0, label: event.name) }
        }
        let panels = trainer + machine.map { Chart.Panel(title: Self.panelTitle($0.series), unit: $0.unit, series: $0.series) }
        return Chart(title: title, axis: axis, panels: panels, marks: marks)
    }

    static func isMachine(_ key: String) -> Bool { key.hasPrefix("system/") }

    /// A wallclock as nanoseconds (a ModelBox client's may be seconds or milliseconds).
    static func nanoseconds(_ wallclock: Int64) -> Int64 { wallclockNanoseconds(wallclock) }

    /// `system/hw.gpu.utilization{…}` → `hw.gpu.utilization`.
    static func machineName(_ key: String) -> String {
        String(key.dropFirst("system/".count).prefix { $0 != "{" })
    }

    /// A machine series for the legend: its name (unless `naming` is false) and the labels that
    /// tell it apart, without the GPU's UUID and model (its index says which).
    static func legend(_ key: String, naming: Bool) -> String {
        let name = machineName(key)
        guard let open = key.firstIndex(of: "{") else { return name }
        let labels = key[key.index(after: open)...].dropLast()
            .split(separator: ",", omittingEmptySubsequences: true)
            .filter { label in !["hw.id=", "hw.model=", "hw.vendor=", "hw.type="].contains { label.hasPrefix($0) } }
            .map { $0.replacingOccurrences(of: "\"", with: "") }
        return ((naming || labels.isEmpty ? [name] : []) + labels).joined(separator: " ")
    }

    /// A panel of the machine's series: their names, the first three.
    static func panelTitle(_ series: [Chart.Series]) -> String {
        var names: [String] = []
        for line in series where !names.contains(machineName(line.key)) { names.append(machineName(line.key)) }
        return names.prefix(3).joined(separator: ", ") + (names.count > 3 ? ", …" : "")
    }

    /// A time (RFC 3339) or a span back from `last` (ns): 30s, 10m, 2h, 1d.
    static func time(_ text: String, last: Int64) throws -> Int64 {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let unit = text.last.flatMap({ units[$0] }), let count = Int64(text.dropLast()), count >= 0 {
            let (span, overflow) = count.multipliedReportingOverflow(by: unit * 1_000_000_000)
            return overflow ? .min : last.subtractingReportingOverflow(span).overflow ? .min : last - span
        }
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds]] {
            formatter.formatOptions = options
            guard let date = formatter.date(from: text) else { continue }
            let nanoseconds = date.timeIntervalSince1970 * 1e9
            guard nanoseconds.magnitude < 9.2e18 else { throw CLIError("\(text) is outside the times a wallclock holds (1677 to 2262)") }
            return Int64(nanoseconds)
        }
        throw CLIError("cannot read \(text.debugDescription) as a time (2026-12-03T10:00:00Z) or a span (30s, 10m, 2h, 1d)")
    }
}

/// Whether `pattern` (`*` any run of characters, `?` one) matches all of `text`.
func glob(_ pattern: String, matches text: String) -> Bool {
    let pattern = Array(pattern)
    let text = Array(text)
    var (p, t) = (0, 0)
    var star: (pattern: Int, text: Int)?
    while t < text.count {
        if p < pattern.count && (pattern[p] == "?" || pattern[p] == text[t]) {
            p += 1
            t += 1
        } else if p < pattern.count && pattern[p] == "*" {
            star = (p, t)
            p += 1
        } else if let last = star {
            // Let the last star take one more character and try again.
            p = last.pattern + 1
            t = last.text + 1
            star = (last.pattern, last.text + 1)
        } else {
            return false
        }
    }
    while p < pattern.count && pattern[p] == "*" { p += 1 }
    return p == pattern.count
}

/// The trainer's step at a time: from the (time, step) of every point it logged, the step
/// interpolated between the two points around that time; nil outside them.
struct StepClock {
    private var times: [Int64] = []
    private var steps: [Double] = []

    init(_ series: [MetricColumns]) {
        let pairs = series.flatMap { zip($0.wallclocks.map(RunChart.nanoseconds), $0.steps) }.sorted { $0.0 < $1.0 }
        for (time, step) in pairs where times.last != time {
            times.append(time)
            steps.append(Double(step))
        }
    }

    var isEmpty: Bool { times.isEmpty }

    func step(at time: Int64) -> Double? {
        guard let first = times.first, let last = times.last, time >= first, time <= last else { return nil }
        // The first logged time at or after `time`.
        var (low, high) = (0, times.count - 1)
        while low < high {
            let middle = (low + high) / 2
            if times[middle] < time { low = middle + 1 } else { high = middle }
        }
        guard times[low] != time, low > 0 else { return steps[low] }
        // Exact differences where they fit (doubles of wallclocks lose 256 ns); doubles where
        // they do not (a time a client clamped to Int64.min, beside today's).
        func apart(_ from: Int64, _ to: Int64) -> Double {
            let (difference, overflow) = to.subtractingReportingOverflow(from)
            return overflow ? Double(to) - Double(from) : Double(difference)
        }
        let share = apart(times[low - 1], time) / apart(times[low - 1], times[low])
        return steps[low - 1] + share * (steps[low] - steps[low - 1])
    }
}
