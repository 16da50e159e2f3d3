/// Writes a chart as one SVG document: a title, then each panel with its legend, y axis, x axis,
/// lines and the events' marks. Readable as it is (no script, no external font or stylesheet),
/// and renderable to PNG by librsvg.
///
/// The document marks what a reader or a test looks for: each panel is a `<g class="panel">`,
/// each line a `<polyline class="series" data-key="…">`, each event a `<line class="event">`.
public struct SVGRenderer: Sendable {
    /// The picture's width and each panel's height, in pixels.
    public var width: Int
    public var panelHeight: Int

    public init(width: Int = 1000, panelHeight: Int = 220) {
        self.width = max(width, 300)
        self.panelHeight = max(panelHeight, 120)
    }

    /// Colours told apart by most eyes (Tableau 10), in order of the series in a panel.
    public static let palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    ]
    static let eventColour = "#b00020"

    // The plot area's margins inside a panel: room for the y labels, the legend and the x labels.
    let left = 64.0
    let right = 16.0
    let top = 40.0
    let bottom = 28.0
    let titleHeight = 28.0

    public func render(_ chart: Chart) -> String {
        let height = Int(titleHeight) + chart.panels.count * panelHeight + (chart.panels.isEmpty ? 40 : 0)
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
            font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">
            <rect class="background" x="0" y="0" width="\(width)" height="\(height)" fill="#ffffff"/>
            <text class="title" x="\(left)" y="19" font-size="14" font-weight="bold">\(escape(chart.title))</text>

            """
        guard let xRange = chart.xRange else {
            svg += "<text x=\"\(left)\" y=\"\(Int(titleHeight) + 20)\">No points to draw.</text>\n</svg>\n"
            return svg
        }
        for (index, panel) in chart.panels.enumerated() {
            svg += render(panel, of: chart, xRange: xRange, top: titleHeight + Double(index * panelHeight))
        }
        return svg + "</svg>\n"
    }

    private func render(_ panel: Chart.Panel, of chart: Chart, xRange: ClosedRange<Double>, top panelTop: Double) -> String {
        let plot = (
            x: left, y: panelTop + top,
            width: Double(width) - left - right, height: Double(panelHeight) - top - bottom)
        let columns = max(1, Int(plot.width))
        let lines = panel.series.map { thin(xs: $0.xs, ys: $0.ys, over: xRange, columns: columns) }
        let yRange = Self.yRange(lines.flatMap(\.ys), unit: panel.unit)
        // Halves: the span between ±1e308 is past what a double holds, half of it is not.
        func share(_ value: Double, of range: ClosedRange<Double>) -> Double {
            (value / 2 - range.lowerBound / 2) / (range.upperBound / 2 - range.lowerBound / 2)
        }
        func x(_ value: Double) -> Double { plot.x + share(value, of: xRange) * plot.width }
        func y(_ value: Double) -> Double { plot.y + plot.height - share(value, of: yRange) * plot.height }
        var out = "<g class=\"panel\" data-title=\"\(escape(panel.title))\">\n"
        // The title, the unit, and the legend after them on the same line.
        let heading = panel.unit.isEmpty ? panel.title : "\(panel.title) (\(Self.unitName(panel.unit)))"
        out += "<text class=\"panel-title\" x=\"\(plot.x)\" y=\"\(format(panelTop + 16))\" font-weight=\"bold\">\(escape(heading))</text>\n"
        var legendX = plot.x
        let legendY = panelTop + 31
        for (index, series) in panel.series.enumerated() {
            let label = Self.clip(series.label, to: 48)
            let room = 18 + Double(label.count) * 6.2 + 14
            if legendX + room > Double(width) - right && legendX > plot.x {
                // Past the right edge: the rest of the legend is told in the line's tooltip.
                out += "<text class=\"legend-more\" x=\"\(format(legendX))\" y=\"\(format(legendY))\">+\(panel.series.count - index) more</text>\n"
                break
            }
            let colour = Self.palette[index % Self.palette.count]
            out += "<rect class=\"legend\" x=\"\(format(legendX))\" y=\"\(format(legendY - 8))\" width=\"12\" height=\"3\" fill=\"\(colour)\"/>"
            out += "<text x=\"\(format(legendX + 16))\" y=\"\(format(legendY))\">\(escape(label))</text>\n"
            legendX += room
        }
        // Grid and axes.
        out += "<rect class=\"plot\" x=\"\(format(plot.x))\" y=\"\(format(plot.y))\" width=\"\(format(plot.width))\" height=\"\(format(plot.height))\" fill=\"none\" stroke=\"#999999\"/>\n"
        let yTicks = Ticks.numbers(yRange.lowerBound, yRange.upperBound, count: max(2, Int(plot.height / 36)))
        for (tick, label) in zip(yTicks, Ticks.labels(yTicks, unit: panel.unit)) {
            let at = format(y(tick))
            out += "<line class=\"grid\" x1=\"\(format(plot.x))\" y1=\"\(at)\" x2=\"\(format(plot.x + plot.width))\" y2=\"\(at)\" stroke=\"#e5e5e5\"/>"
            out += "<text class=\"y-tick\" x=\"\(format(plot.x - 6))\" y=\"\(format(y(tick) + 4))\" text-anchor=\"end\">\(escape(label))</text>\n"
        }
        let xCount = max(2, Int(plot.width / 110))
        let xTicks = chart.axis == .time
            ? Ticks.times(xRange.lowerBound, xRange.upperBound, count: xCount)
            : Ticks.numbers(xRange.lowerBound, xRange.upperBound, count: xCount)
        let timeStep = xTicks.count > 1 ? xTicks[1] - xTicks[0] : 1
        let stepLabels = Ticks.labels(xTicks, unit: "")
        for (tick, stepLabel) in zip(xTicks, stepLabels) {
            let label = chart.axis == .time ? Ticks.label(time: tick, step: timeStep) : stepLabel
            out += "<text class=\"x-tick\" x=\"\(format(x(tick)))\" y=\"\(format(plot.y + plot.height + 16))\" text-anchor=\"middle\">\(escape(label))</text>\n"
        }
        // The events, under the lines.
        for mark in chart.marks where xRange.contains(mark.x) {
            let at = format(x(mark.x))
            out += "<line class=\"event\" x1=\"\(at)\" y1=\"\(format(plot.y))\" x2=\"\(at)\" y2=\"\(format(plot.y + plot.height))\" stroke=\"\(Self.eventColour)\" stroke-dasharray=\"4 3\"><title>\(escape(mark.label))</title></line>"
            out += "<text class=\"event-label\" x=\"\(format(x(mark.x) + 3))\" y=\"\(format(plot.y + 11))\" fill=\"\(Self.eventColour)\" font-size=\"10\">\(escape(Self.clip(mark.label, to: 24)))</text>\n"
        }
        for (index, (series, line)) in zip(panel.series, lines).enumerated() {
            let colour = Self.palette[index % Self.palette.count]
            let points = zip(line.xs, line.ys).map { "\(format(x($0))),\(format(y($1)))" }.joined(separator: " ")
            out += "<polyline class=\"series\" data-key=\"\(escape(series.key))\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" stroke-linejoin=\"round\" points=\"\(points)\"><title>\(escape(series.label))</title></polyline>\n"
        }
        return out + "</g>\n"
    }

    /// The y axis' span: the values' lowest to highest with a little room, from 0 for values that
    /// are all positive and not far from it, 0 to 100 % for shares that stay within it.
    static func yRange(_ values: [Double], unit: String) -> ClosedRange<Double> {
        guard var lower = values.min(), var upper = values.max() else { return 0...1 }
        if unit == "1" && lower >= 0 && upper <= 1 { return 0...1 }
        if lower >= 0 && lower < upper * 0.5 { lower = 0 }
        if lower == upper {
            let room = lower == 0 ? 1 : abs(lower) * 0.1
            return max(lower - room, -.greatestFiniteMagnitude)...min(upper + room, .greatestFiniteMagnitude)
        }
        // Room of a twentieth above and below, short of the largest double.
        let room = (upper / 2 - lower / 2) * 0.1
        upper = min(upper + room, .greatestFiniteMagnitude)
        if lower != 0 { lower = max(lower - room, -.greatestFiniteMagnitude) }
        return lower...upper
    }

    /// OpenTelemetry's unit as a person reads it.
    static func unitName(_ unit: String) -> String {
        switch unit {
        case "1": "share"
        case "By": "bytes"
        case "By/s": "bytes/s"
        case "s": "seconds"
        case "s/s": "seconds/s"
        case "W": "watts"
        case "J": "joules"
        case "Cel": "°C"
        case "Hz": "hertz"
        default: unit.hasPrefix("{") ? String(unit.dropFirst().prefix { $0 != "}" }) : unit
        }
    }

    static func clip(_ text: String, to length: Int) -> String {
        text.count <= length ? text : String(text.prefix(length - 1)) + "…"
    }

    /// Two decimals at most: the document stays small and exact enough for any screen.
    private func format(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }

    private func escape(_ text: String) -> String { Markup.escape(text) }
}

/// Text made safe inside an element or a quoted attribute of XML or HTML: the SVG documents, and
/// the agent's pages around them.
public enum Markup {
    public static func escape(_ text: some StringProtocol) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            // Control characters are not allowed in XML 1.0.
            case _ where character.value < 0x20 && character != "\n" && character != "\t": out += "?"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }
}
