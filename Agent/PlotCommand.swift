import ArgumentParser
import BoxcarCharts
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
        let chart = try RunChart(axis: axis, since: since, until: until).chart(title: title, series: series, events: events)
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
