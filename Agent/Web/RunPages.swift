import BoxcarCharts
import BoxcarHTTP
import BoxcarModel
import BoxcarStorage
import BoxcarStore
import FoundationEssentials

/// What the agent's pages (`--http`, `/`) show, read from its store: the experiments, and each
/// one's charts, events, metadata, files and attached trainers. A run is live while a trainer is
/// attached to it or it logged within the last minute; its page then loads itself again every
/// few seconds (no script: a `refresh` the browser follows).
struct RunPages: Sendable {
    let store: Store
    let artifacts: ArtifactStore

    /// How often a live run's page is loaded again, and how recent its last point must be for
    /// it to count as live without an attached trainer.
    static let refreshSeconds = 5
    static let liveWithin: Int64 = 60_000_000_000
    /// The trainer's own metrics charted when the form names none; the rest are listed.
    static let defaultTrainerKeys = 24
    /// The most lines in one of the machine's panels (a machine with 40 disks draws the first 8).
    static let maxMachineLines = 8
    /// The most series patterns chart (`*` would chart every series of the machine), and the most
    /// events listed and marked (the latest).
    static let maxKeys = 64
    static let maxEvents = 500

    var endpoints: WebPages {
        WebPages(
            index: { try await index() },
            run: { id, query in try await run(id: id, query: RunForm(query)) },
            file: { experimentID, fileID in try await file(experimentID: experimentID, fileID: fileID) })
    }

    func index() async throws -> WebPages.Page {
        let experiments = try await store.experiments(namespace: nil)
        let live = Set(try await store.attachedProcesses().map(\.experimentID))
        return PageHTML.index(experiments: experiments.reversed(), live: live)
    }

    func run(id: String, query form: RunForm) async throws -> WebPages.Page? {
        let began = ContinuousClock.now
        guard let experiment = try await store.experiment(id: id) else { return nil }
        let attachments = try await store.attachments(experimentID: id)
        let keys = try await store.metricKeys(parentID: id)
        let (chosen, omitted) = Self.choose(keys: keys, patterns: form.patterns, pids: Set(attachments.map(\.pid)))
        // In the order chosen (the store answers in key order): the GPUs' charts first.
        let order = Dictionary(chosen.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let series = chosen.isEmpty ? [] : try await store.metrics(parentID: id, keys: chosen, range: nil)
            .sorted { order[$0.key, default: .max] < order[$1.key, default: .max] }
        let allEvents = try await store.events(parentID: id, since: 0)
        let events = Array(allEvents.suffix(Self.maxEvents))
        var page = PageHTML.RunContent(
            experiment: experiment, form: form, events: events, metadata: try await store.metadata(parentID: id),
            files: try await store.files(parentID: id).map { ($0, $0.blob.map { FileManager.default.fileExists(atPath: artifacts.blobPath($0)) } ?? false) },
            attachments: attachments, omittedKeys: omitted, earlierEvents: allEvents.count - events.count)
        let newest = series.compactMap { $0.columns.wallclocks.lazy.map(RunChart.nanoseconds).max() }.max()
        page.live = attachments.contains { $0.detachedAt == nil } || newest.map { $0 > WallClock.now() - Self.liveWithin } ?? false
        if series.isEmpty {
            page.problem = form.patterns.isEmpty ? nil : "No metric of this experiment matches \(form.patterns.joined(separator: " or "))."
        } else {
            let chart = RunChart(axis: form.axis, since: form.since, until: form.until, grouping: form.patterns.isEmpty ? .name : .unit)
            do {
                let drawn = try chart.chart(title: experiment.name.isEmpty ? id : experiment.name, series: series, events: events)
                page.chart = SVGRenderer(width: 1000, panelHeight: 200).render(drawn)
            } catch let error as CLIError {
                page.problem = error.description
            }
        }
        var made = PageHTML.run(page)
        // Each load reads the charted series whole: a long run's page is loaded again no sooner
        // than twenty times what this one took, so an open tab costs at most a twentieth of a core.
        if made.refresh != nil {
            made.refresh = max(Self.refreshSeconds, Int((ContinuousClock.now - began).seconds * 20 + 0.999))
        }
        return made
    }

    func file(experimentID: String, fileID: String) async throws -> WebPages.Download? {
        guard let file = try await store.files(parentID: experimentID).first(where: { $0.id == fileID }), let blob = file.blob else { return nil }
        let path = artifacts.blobPath(blob)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return WebPages.Download(path: path, name: file.path.isEmpty ? file.id : file.path)
    }

    /// The keys charted: those the patterns match; without patterns, the trainer's own (the first
    /// `defaultTrainerKeys`) and the machine's series a person looks at first (`machinePanels`),
    /// the trainer's processes only among the process trees. Also the trainer's keys left out.
    static func choose(keys: [String], patterns: [String], pids: Set<Int32>) -> (chosen: [String], omitted: [String]) {
        guard patterns.isEmpty else {
            let matched = keys.filter { key in patterns.contains { glob($0, matches: key) } }
            return (Array(matched.prefix(maxKeys)), Array(matched.dropFirst(maxKeys)))
        }
        let trainer = keys.filter { !RunChart.isMachine($0) }
        var machine: [String] = []
        let pidLabels = Set(pids.map { "process.pid=\"\($0)\"" })
        for panel in machinePanels {
            let lines = keys.filter { key in
                RunChart.isMachine(key) && RunChart.machineName(key) == panel.name && panel.keep(key)
                    && (!panel.name.hasPrefix("process.") || pidLabels.contains { key.contains($0) })
            }
            machine += lines.prefix(maxMachineLines)
        }
        return (Array(trainer.prefix(defaultTrainerKeys)) + machine, Array(trainer.dropFirst(defaultTrainerKeys)))
    }

    /// The machine's charts on a run's page, in order: a metric's name, and which of its series
    /// are lines.
    static let machinePanels: [(name: String, keep: @Sendable (String) -> Bool)] = [
        // The kernels' share, not the video encoder's and decoder's (`hw.gpu.task`).
        ("hw.gpu.utilization", { !$0.contains("hw.gpu.task=") }),
        ("hw.gpu.memory.usage", { _ in true }),
        ("hw.power", { _ in true }),
        ("hw.temperature", { _ in true }),
        // The machine's total (no core's number) in the modes that say where the time went.
        ("system.cpu.utilization", { key in
            !key.contains("cpu.logical_number") && ["user", "system", "iowait"].contains { key.contains("cpu.mode=\"\($0)\"") }
        }),
        ("process.cpu.utilization", { _ in true }),
        ("process.memory.usage", { _ in true }),
        ("system.pressure.avg10", { $0.contains("kind=\"some\"") }),
        ("system.disk.io.rate", { _ in true }),
        ("system.network.io.rate", { _ in true }),
    ]
}

/// The fields of a run page's form: key patterns (several, space- or comma-separated), the axis,
/// and the window.
struct RunForm: Sendable, Equatable {
    var patterns: [String] = []
    var axis: Chart.Axis = .time
    var since: String?
    var until: String?

    init(patterns: [String] = [], axis: Chart.Axis = .time, since: String? = nil, until: String? = nil) {
        (self.patterns, self.axis, self.since, self.until) = (patterns, axis, since, until)
    }

    init(_ fields: [(name: String, value: String)]) {
        for (name, value) in fields {
            let value = value.trimmingCharacters(in: .whitespaces)
            switch name {
            case "key": patterns += value.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
            case "axis": axis = Chart.Axis(rawValue: value) ?? .time
            case "since": since = value.isEmpty ? nil : value
            case "until": until = value.isEmpty ? nil : value
            default: break
            }
        }
    }
}
