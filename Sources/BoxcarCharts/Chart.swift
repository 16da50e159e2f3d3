// BoxcarCharts: pictures of a run, as SVG. A chart is panels stacked one above another over one
// x axis (the trainer's steps, or time), each panel one unit's series, the run's events marked
// across them all. Pure: points in, text out; `boxcar plot` reads the points and writes the file,
// and the agent's page serves the same pictures.

/// What to draw: its panels, their series and the events to mark.
public struct Chart: Sendable {
    public enum Axis: String, Sendable, CaseIterable {
        /// The trainer's steps.
        case step
        /// Wallclock time: x is seconds since the Unix epoch, labelled in UTC.
        case time
    }

    /// One line: a label for the legend and its points, x ascending.
    public struct Series: Sendable {
        public var label: String
        /// The full key it was read from (kept on the drawn line, for tests and tools).
        public var key: String
        public var xs: [Double]
        public var ys: [Double]

        public init(label: String, key: String, xs: [Double], ys: [Double]) {
            self.label = label
            self.key = key
            self.xs = xs
            self.ys = ys
        }
    }

    /// Series sharing a y axis: one unit's.
    public struct Panel: Sendable {
        public var title: String
        /// As OpenTelemetry writes units (`1` is a share: labelled as percent; `By`, `s`, `W`…);
        /// empty when unknown (a trainer's own metric).
        public var unit: String
        public var series: [Series]

        public init(title: String, unit: String, series: [Series]) {
            self.title = title
            self.unit = unit
            self.series = series
        }
    }

    /// An event of the run (an experiment's event, a GPU's XID error): a vertical line at `x`.
    public struct Mark: Sendable {
        public var x: Double
        public var label: String

        public init(x: Double, label: String) {
            self.x = x
            self.label = label
        }
    }

    public var title: String
    public var axis: Axis
    public var panels: [Panel]
    public var marks: [Mark]

    public init(title: String, axis: Axis, panels: [Panel], marks: [Mark] = []) {
        self.title = title
        self.axis = axis
        self.panels = panels
        self.marks = marks
    }

    /// The lowest and highest x of all series (marks outside are not drawn); a range one wide
    /// around a single point.
    var xRange: ClosedRange<Double>? {
        var lower = Double.infinity
        var upper = -Double.infinity
        for series in panels.flatMap(\.series) {
            guard let first = series.xs.first, let last = series.xs.last else { continue }
            lower = min(lower, first)
            upper = max(upper, last)
        }
        guard lower <= upper else { return nil }
        return lower == upper ? (lower - 0.5)...(upper + 0.5) : lower...upper
    }
}

/// Many points drawn in few pixels: per pixel column, the first point, the lowest, the highest
/// and the last, in their order, so that a spike one point wide is still drawn at its height
/// (an average per column would hide it). Points whose value is not finite are left out.
public func thin(xs: [Double], ys: [Double], over range: ClosedRange<Double>, columns: Int) -> (xs: [Double], ys: [Double]) {
    let width = range.upperBound - range.lowerBound
    guard columns > 0, width > 0 else { return ([], []) }
    var out: (xs: [Double], ys: [Double]) = ([], [])
    var column = Int.min
    var kept: [Int] = []  // first, lowest, highest, last of the column being read
    func flush() {
        for index in kept.sorted() where out.xs.last != xs[index] || out.ys.last != ys[index] {
            out.xs.append(xs[index])
            out.ys.append(ys[index])
        }
        kept.removeAll(keepingCapacity: true)
    }
    for index in xs.indices where ys[index].isFinite && range.contains(xs[index]) {
        let here = min(columns - 1, Int((xs[index] - range.lowerBound) / width * Double(columns)))
        if here != column {
            flush()
            column = here
            kept = [index, index, index, index]
            continue
        }
        if ys[index] < ys[kept[1]] { kept[1] = index }
        if ys[index] > ys[kept[2]] { kept[2] = index }
        kept[3] = index
    }
    flush()
    return out
}
