import ArgumentParser
import BoxcarCharts
import BoxcarModel
import BoxcarSensors
import Foundation

/// `boxcar plot`: an experiment's metrics and the machine's series of its attached windows as
/// line charts, one panel per unit (a trainer's own metric, whose unit is not known, a panel of
/// its own), its events marked, written as SVG (PNG through librsvg's rsvg-convert).
struct PlotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw an experiment's metrics as line charts (SVG, or PNG with rsvg-convert).",
        discussion: """
            Each --key is a pattern matched against the experiment's metric keys \
            (`boxcar metrics` lists them): * matches any run of characters, ? one. \
            The machine's series of the windows a trainer was attached start with \
            system/, e.g. 'system/hw.gpu.utilization*'. Series of one unit share a \
            panel; each of the trainer's own metrics has a panel of its own. The \
            experiment's events (and GPU XID errors) are dashed vertical lines. \
            With --axis step, the machine's series are placed at the trainer's step \
            by their time. --since and --until take a time (2026-12-03T10:00:00Z) \
            or a span back from the last point (30s, 10m, 2h, 1d).

            Example: boxcar plot $RUN --key loss --key 'system/hw.gpu.utilization*' --since 2h --output run.png
            """)

    @Argument(help: "The experiment id (or another object's).")
    var experiment: String

    @Option(name: .customLong("key"), help: ArgumentHelp("A key or a pattern of keys; repeat for several.", valueName: "PATTERN"))
    var patterns: [String] = []

    @Option(help: "The x axis: time (default) or step.")
    var axis: Chart.Axis = .time

    @Option(help: ArgumentHelp("Leave out what came before this time.", valueName: "TIME|SPAN"))
    var since: String?

    @Option(help: ArgumentHelp("Leave out what came after this time.", valueName: "TIME|SPAN"))
    var until: String?

    @Option(help: "The file to write: .svg, or .png (needs rsvg-convert, Debian's librsvg2-bin).")
    var output: String

    @Option(help: "The picture's width in pixels.")
    var width = 1000

    @OptionGroup var source: SourceOptions

    func validate() throws {
        guard !patterns.isEmpty else { throw ArgumentParser.ValidationError("give at least one --key (`boxcar metrics \(experiment)` lists the keys)") }
        guard output.hasSuffix(".svg") || output.hasSuffix(".png") else { throw ArgumentParser.ValidationError("--output must end in .svg or .png") }
        guard (300...20_000).contains(width) else { throw ArgumentParser.ValidationError("--width must be 300 to 20000") }
    }

    func run() async throws {
        let png = output.hasSuffix(".png")
        let converter = png ? try findConverter() : nil
        let (series, events, title) = try await source.withSource { source in
            let keys = try await source.metricKeys(parentID: experiment)
            let wanted = keys.filter { key in patterns.contains { glob($0, matches: key) } }
            guard !wanted.isEmpty else {
                let sample = keys.prefix(8).joined(separator: ", ")
                throw CLIError("no metric of \(experiment) matches \(patterns.joined(separator: " or "))" + (keys.isEmpty ? " (it has none)" : "; its keys include \(sample)"))
            }
            let series = try await source.metrics(parentID: experiment, keys: wanted)
            let events = try await source.events(parentID: experiment)
            let name = try await source.experiments(namespace: nil).first { $0.id == experiment }?.name
            return (series, events, name.map { "\($0) (\(experiment))" } ?? experiment)
        }
        let chart = try makeChart(title: title, series: series, events: events)
        let svg = SVGRenderer(width: width).render(chart)
        guard let converter else {
            try write(svg, to: output)
            return
        }
        // In a directory of its own (mkdtemp: made new, this user's alone), not a guessable name.
        var template = Array((FileManager.default.temporaryDirectory.path + "/boxcar-plot-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CLIError("cannot make a temporary directory for the SVG: \(String(cString: strerror(errno)))") }
        let directory = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try write(svg, to: directory + "/chart.svg")
        try convert(directory + "/chart.svg", to: output, with: converter)
    }

    /// The chart: each series' float points in the window, on the chosen axis, in its panel.
    func makeChart(title: String, series: [(key: String, columns: MetricColumns)], events: [Event]) throws -> Chart {
        let last = series.compactMap { $0.columns.wallclocks.lazy.map(Self.nanoseconds).max() }.max() ?? 0
        let lower = try since.map { try Self.time($0, last: last) } ?? .min
        let upper = try until.map { try Self.time($0, last: last) } ?? .max
        // The trainer's step at each time it logged, for placing the machine's points by step.
        let clock = StepClock(series.filter { !Self.isMachine($0.key) }.map(\.columns))
        if axis == .step && clock.isEmpty && series.contains(where: { Self.isMachine($0.key) }) {
            throw CLIError("--axis step places the machine's series at the trainer's steps: add a key of the trainer's own, or use --axis time")
        }
        var trainer: [Chart.Panel] = []
        var byUnit: [(unit: String, series: [Chart.Series])] = []
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
            if Self.isMachine(key) {
                let name = Self.machineName(key)
                let unit = MachineMetrics.byName[name]?.unit ?? ""
                let line = Chart.Series(label: Self.legend(key), key: key, xs: xs, ys: ys)
                if let at = byUnit.firstIndex(where: { $0.unit == unit }) { byUnit[at].series.append(line) } else { byUnit.append((unit, [line])) }
            } else {
                trainer.append(Chart.Panel(title: key, unit: "", series: [Chart.Series(label: key, key: key, xs: xs, ys: ys)]))
            }
        }
        guard !trainer.isEmpty || !byUnit.isEmpty else {
            throw CLIError("the keys matched have no numeric point in the window asked for")
        }
        let machine = byUnit.map { unit, series in
            Chart.Panel(title: Self.panelTitle(series), unit: unit, series: series)
        }
        let marks = events.compactMap { event -> Chart.Mark? in
            let wallclock = Self.nanoseconds(event.wallclock)
            guard wallclock >= lower && wallclock <= upper else { return nil }
            let x = axis == .time ? Double(wallclock) / 1e9 : clock.step(at: wallclock)
            return x.map { Chart.Mark(x: $0, label: event.name) }
        }
        return Chart(title: title, axis: axis, panels: trainer + machine, marks: marks)
    }

    static func isMachine(_ key: String) -> Bool { key.hasPrefix("system/") }

    /// A wallclock as nanoseconds (a ModelBox client's may be seconds or milliseconds).
    static func nanoseconds(_ wallclock: Int64) -> Int64 { wallclockNanoseconds(wallclock) }

    /// `system/hw.gpu.utilization{…}` → `hw.gpu.utilization`.
    static func machineName(_ key: String) -> String {
        String(key.dropFirst("system/".count).prefix { $0 != "{" })
    }

    /// A machine series for the legend: its name and the labels that tell it apart, without the
    /// GPU's UUID and model (its index says which).
    static func legend(_ key: String) -> String {
        let name = machineName(key)
        guard let open = key.firstIndex(of: "{") else { return name }
        let labels = key[key.index(after: open)...].dropLast()
            .split(separator: ",", omittingEmptySubsequences: true)
            .filter { label in !["hw.id=", "hw.model=", "hw.vendor=", "hw.type="].contains { label.hasPrefix($0) } }
            .map { $0.replacingOccurrences(of: "\"", with: "") }
        return ([name] + labels).joined(separator: " ")
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

    private func findConverter() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(directory)/rsvg-convert") {
            return "\(directory)/rsvg-convert"
        }
        throw CLIError("writing PNG needs rsvg-convert (Debian: apt-get install librsvg2-bin); write .svg instead")
    }

    private func convert(_ svg: String, to png: String, with converter: String) throws {
        let process = Process()
        process.executableURL = URL(filePath: converter)
        process.arguments = ["--format", "png", "--output", png, svg]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CLIError("rsvg-convert could not write \(png): \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    private func write(_ text: String, to path: String) throws {
        do {
            try Data(text.utf8).write(to: URL(filePath: path))
        } catch {
            throw CLIError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

extension Chart.Axis: ExpressibleByArgument {}

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
        let pairs = series.flatMap { zip($0.wallclocks.map(PlotCommand.nanoseconds), $0.steps) }.sorted { $0.0 < $1.0 }
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
        let share = Double(time - times[low - 1]) / Double(times[low] - times[low - 1])
        return steps[low - 1] + share * (steps[low] - steps[low - 1])
    }
}
