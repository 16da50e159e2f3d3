import BoxcarCharts
import BoxcarHTTP
import BoxcarModel
import FoundationEssentials

/// The agent's pages as HTML: pure, from what `RunPages` read. Every text a client sent (names,
/// keys, metadata, paths) is escaped; links carry ids percent-encoded.
enum PageHTML {
    static func index(experiments: [Experiment], live: Set<String>) -> WebPages.Page {
        guard !experiments.isEmpty else {
            return .init(title: "Experiments", body: """
                <h1>Experiments</h1>
                <p class="muted">None yet. A trainer's first experiment (the Python SDK, a ModelBox client) shows here.</p>
                """, refresh: 10)
        }
        var rows = ""
        for experiment in experiments {
            let name = experiment.name.isEmpty ? experiment.id : experiment.name
            rows += """
                <tr><td><a href="\(runLink(experiment.id))">\(escape(name))</a>\(live.contains(experiment.id) ? " <span class=\"live\">live</span>" : "")</td>\
                <td>\(escape(experiment.namespace))</td><td>\(escape(experiment.owner))</td><td>\(escape("\(experiment.framework)"))</td>\
                <td>\(time(experiment.createdAt))</td><td class="mono">\(escape(experiment.id))</td></tr>

                """
        }
        // While a trainer is attached the list is kept current too (a run ending, a new one).
        return .init(title: "Experiments", body: """
            <h1>Experiments</h1>
            <p class="muted">\(experiments.count) experiment\(experiments.count == 1 ? "" : "s"), newest first.</p>
            <table class="experiments">
            <thead><tr><th>Name</th><th>Namespace</th><th>Owner</th><th>Framework</th><th>Created (UTC)</th><th>ID</th></tr></thead>
            <tbody>
            \(rows)</tbody>
            </table>
            """, refresh: live.isEmpty ? nil : 10)
    }

    /// What a run's page shows.
    struct RunContent {
        var experiment: Experiment
        var form: RunForm
        var events: [Event]
        var metadata: Metadata
        /// Each file, and whether its bytes are here to download.
        var files: [(FileRecord, Bool)]
        var attachments: [Attachment]
        var omittedKeys: [String]
        /// Events before the latest ones shown (`RunPages.maxEvents`).
        var earlierEvents = 0
        var live = false
        /// The chart, as SVG; nil when there is nothing to draw.
        var chart: String?
        /// Why there is no chart (a pattern matching nothing, a time not understood).
        var problem: String?
    }

    static func run(_ content: RunContent) -> WebPages.Page {
        let experiment = content.experiment
        let name = experiment.name.isEmpty ? experiment.id : experiment.name
        var body = "<h1>\(escape(name))\(content.live ? " <span class=\"live\">live</span>" : "")</h1>\n"
        let facts = [
            ("ID", experiment.id), ("Namespace", experiment.namespace), ("Owner", experiment.owner),
            ("Framework", "\(experiment.framework)"), ("Task", experiment.task), ("Created", time(experiment.createdAt) + " UTC"),
        ].filter { !$0.1.isEmpty }
        body += "<p class=\"muted\">" + facts.map { "\($0.0): <span class=\"mono\">\(escape($0.1))</span>" }.joined(separator: " · ") + "</p>\n"
        body += form(content.form, id: experiment.id)
        if let problem = content.problem { body += "<p class=\"problem\">\(escape(problem))</p>\n" }
        if let chart = content.chart {
            body += "<div class=\"chart\">\n\(chart)</div>\n"
        } else if content.problem == nil {
            body += "<p class=\"muted\">No metrics yet.</p>\n"
        }
        if !content.omittedKeys.isEmpty {
            let shown = content.omittedKeys.prefix(40).map { "<code>\(escape($0))</code>" }.joined(separator: ", ")
            let why = content.form.patterns.isEmpty ? "Not charted (name them above)" : "Matched but past the \(RunPages.maxKeys) charted"
            body += "<p class=\"muted\">\(why): \(shown)\(content.omittedKeys.count > 40 ? ", … (\(content.omittedKeys.count) in all)" : "")</p>\n"
        }
        body += events(content.events, earlier: content.earlierEvents)
        body += metadata(content.metadata)
        body += files(content.files, experimentID: experiment.id)
        body += attachments(content.attachments)
        return .init(title: name, body: body, refresh: content.live ? RunPages.refreshSeconds : nil)
    }

    /// The chart's form: a GET, so the address says what is shown (and can be shared).
    static func form(_ form: RunForm, id: String) -> String {
        func option(_ axis: Chart.Axis, _ label: String) -> String {
            "<option value=\"\(axis.rawValue)\"\(form.axis == axis ? " selected" : "")>\(label)</option>"
        }
        return """
            <form class="query" method="get" action="\(runLink(id))">
            <label>Keys (patterns, * and ?)<input name="key" size="32" value="\(escape(form.patterns.joined(separator: " ")))" placeholder="loss system/hw.gpu.*"></label>
            <label>Axis<select name="axis">\(option(.time, "time"))\(option(.step, "step"))</select></label>
            <label>Since<input name="since" size="12" value="\(escape(form.since ?? ""))" placeholder="30m"></label>
            <label>Until<input name="until" size="12" value="\(escape(form.until ?? ""))" placeholder="2026-12-03T10:00:00Z"></label>
            <button type="submit">Show</button>
            </form>

            """
    }

    static func events(_ events: [Event], earlier: Int = 0) -> String {
        var out = "<h2>Events</h2>\n"
        guard !events.isEmpty else { return out + "<p class=\"muted\">None.</p>\n" }
        if earlier > 0 { out += "<p class=\"muted\">The latest \(events.count); \(earlier) earlier ones are left out (<code>boxcar events</code> lists them all).</p>\n" }
        out += "<table class=\"events\">\n<thead><tr><th>Time (UTC)</th><th>Name</th><th>Source</th><th>Metadata</th></tr></thead>\n<tbody>\n"
        for event in events {
            let metadata = event.metadata.isEmpty ? "" : (try? encodeJSON(event.metadata)) ?? ""
            out += "<tr><td>\(time(event.wallclock))</td><td>\(escape(event.name))</td><td>\(escape(event.source))</td><td class=\"mono\">\(escape(metadata))</td></tr>\n"
        }
        return out + "</tbody>\n</table>\n"
    }

    static func metadata(_ metadata: Metadata) -> String {
        var out = "<h2>Metadata</h2>\n"
        guard !metadata.isEmpty else { return out + "<p class=\"muted\">None.</p>\n" }
        out += "<table class=\"metadata\">\n<thead><tr><th>Key</th><th>Value</th></tr></thead>\n<tbody>\n"
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            let text: String
            if case .string(let string) = value { text = string } else { text = (try? encodeJSON(value)) ?? "" }
            out += "<tr><td class=\"mono\">\(escape(key))</td><td class=\"mono\">\(escape(text))</td></tr>\n"
        }
        return out + "</tbody>\n</table>\n"
    }

    static func files(_ files: [(FileRecord, Bool)], experimentID: String) -> String {
        var out = "<h2>Artifacts</h2>\n"
        guard !files.isEmpty else { return out + "<p class=\"muted\">None.</p>\n" }
        out += "<table class=\"artifacts\">\n<thead><tr><th>Path</th><th>Type</th><th>Size</th><th>Checksum</th><th>Created (UTC)</th></tr></thead>\n<tbody>\n"
        for (file, present) in files {
            let path = escape(file.path.isEmpty ? file.id : file.path)
            let link = present ? "<a href=\"\(runLink(experimentID))/files/\(HTMLDocument.percentEncode(file.id))\">\(path)</a>" : "\(path) <span class=\"muted\">(bytes not here)</span>"
            out += "<tr><td class=\"mono\">\(link)</td><td>\(escape("\(file.fileType)"))</td><td class=\"number\">\(file.size.map { Format.bytes(Double($0)) } ?? "")</td><td class=\"mono\">\(escape(file.checksum))</td><td>\(time(file.createdAt))</td></tr>\n"
        }
        return out + "</tbody>\n</table>\n"
    }

    static func attachments(_ attachments: [Attachment]) -> String {
        guard !attachments.isEmpty else { return "" }
        var out = "<h2>Trainer processes</h2>\n<p class=\"muted\">The machine's charts above cover the times a trainer was attached.</p>\n"
        out += "<table class=\"attachments\">\n<thead><tr><th>PID</th><th>Attached (UTC)</th><th>Detached (UTC)</th></tr></thead>\n<tbody>\n"
        for attachment in attachments {
            out += "<tr><td class=\"number\">\(attachment.pid)</td><td>\(time(attachment.attachedAt))</td><td>\(attachment.detachedAt.map(time) ?? "<span class=\"live\">attached</span>")</td></tr>\n"
        }
        return out + "</tbody>\n</table>\n"
    }

    static func runLink(_ id: String) -> String { "/experiments/" + HTMLDocument.percentEncode(id) }

    static func escape(_ text: String) -> String { HTMLDocument.escape(text) }

    /// UTC to the second: 2026-12-03 17:20:05.
    static func time(_ wallclock: Int64) -> String {
        let seconds = Double(RunChart.nanoseconds(wallclock)) / 1e9
        let text = Date(timeIntervalSince1970: seconds).formatted(Date.ISO8601FormatStyle())
        return text.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")
    }
}
