@testable import BoxcarCharts
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// The SVG document as a reader sees it: its elements with their attributes, in order.
final class Elements: NSObject, XMLParserDelegate {
    var all: [(name: String, attributes: [String: String])] = []
    var failure: Error?

    init(_ svg: String) {
        super.init()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = self
        if !parser.parse() { failure = parser.parserError }
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
        all.append((name, attributes))
    }

    func withClass(_ name: String) -> [[String: String]] {
        all.filter { $0.attributes["class"] == name }.map(\.attributes)
    }
}

@Suite struct ChartTests {
    @Test func thinningKeepsASpikeOnePointWideAndFewPoints() {
        let count = 100_000
        let xs = (0..<count).map(Double.init)
        var ys = xs.map { sin($0 / 1000) }
        ys[54_321] = 50  // one point far above the rest
        ys[12_345] = -50
        let (thinXs, thinYs) = thin(xs: xs, ys: ys, over: 0...Double(count - 1), columns: 800)
        #expect(thinXs.count <= 4 * 800)
        #expect(thinYs.max() == 50)
        #expect(thinYs.min() == -50)
        #expect(thinXs.contains(54_321))
        // In order, first and last kept.
        #expect(thinXs == thinXs.sorted())
        #expect(thinXs.first == 0 && thinXs.last == Double(count - 1))
    }

    @Test func thinningLeavesOutValuesThatAreNotNumbers() {
        let (xs, ys) = thin(xs: [0, 1, 2, 3], ys: [1, .nan, .infinity, 2], over: 0...3, columns: 100)
        #expect(xs == [0, 3])
        #expect(ys == [1, 2])
    }

    @Test func ticksAreRoundAndInsideTheSpan() {
        let tenths = Ticks.numbers(0, 1, count: 5)
        #expect(tenths.count == 6 && zip(tenths, [0, 0.2, 0.4, 0.6, 0.8, 1]).allSatisfy { abs($0 - $1) < 1e-12 })
        let ticks = Ticks.numbers(3, 997, count: 5)
        #expect(ticks == [200, 400, 600, 800])
        #expect(Ticks.numbers(-0.3, 0.3, count: 3).contains(0))
        // Ten minutes of a run, every two minutes on the clock.
        let start = 1_764_756_000.0 + 37  // 2025-12-03T10:00:37Z
        let times = Ticks.times(start, start + 600, count: 5)
        #expect(times.map { Ticks.label(time: $0, step: 120) } == ["10:02", "10:04", "10:06", "10:08", "10:10"])
        #expect(Ticks.label(time: start, step: 10) == "10:00:37")
        #expect(Ticks.label(time: 0, step: 86400) == "1970-01-01")
        #expect(Ticks.label(time: 951_782_400, step: 86400) == "2000-02-29")
        #expect(Ticks.label(0.25, unit: "1") == "25%")
        #expect(Ticks.label(1_500_000_000, unit: "By") == "1.5G")
        #expect(Ticks.label(0.000_002, unit: "s") == "2e-6")
        #expect(Ticks.label(-2500, unit: "") == "-2.5k")
    }

    @Test func anAxisLabelsItsTicksApart() {
        // A learning rate's panel, steps near a million, shares, bytes, tiny values.
        #expect(Ticks.labels([0.001, 0.0015, 0.002], unit: "") == ["0.0010", "0.0015", "0.0020"])
        #expect(Ticks.labels([1_000_000, 1_000_100, 1_000_200], unit: "") == ["1.0000M", "1.0001M", "1.0002M"])
        #expect(Ticks.labels([0, 0.25, 0.5, 0.75, 1], unit: "1") == ["0%", "25%", "50%", "75%", "100%"])
        #expect(Ticks.labels([0, 5e9, 1e10, 1.5e10], unit: "By") == ["0G", "5G", "10G", "15G"])
        #expect(Ticks.labels([-200, 0, 200], unit: "") == ["-200", "0", "200"])
        #expect(Ticks.labels([2e-6, 4e-6, 6e-6], unit: "s") == ["2e-6", "4e-6", "6e-6"])
        for ticks in [Ticks.numbers(0.0009, 0.0021, count: 5), Ticks.numbers(999_950, 1_000_250, count: 4), Ticks.numbers(-1e-7, 3e-7, count: 4)] {
            let labels = Ticks.labels(ticks, unit: "")
            #expect(Set(labels).count == labels.count, "\(ticks) read as \(labels)")
        }
    }

    func chart() -> Chart {
        let steps = (0..<500).map(Double.init)
        return Chart(
            title: "run <1> & co",
            axis: .step,
            panels: [
                .init(title: "loss", unit: "", series: [.init(label: "loss", key: "loss", xs: steps, ys: steps.map { 2 / (1 + $0 / 50) })]),
                .init(title: "hw.gpu.utilization", unit: "1", series: [
                    .init(label: "hw.gpu.utilization index=0", key: "system/hw.gpu.utilization{index=\"0\"}", xs: steps, ys: steps.map { $0 < 250 ? 0.9 : 0.3 }),
                    .init(label: "hw.gpu.utilization index=1", key: "system/hw.gpu.utilization{index=\"1\"}", xs: steps, ys: steps.map { _ in 0.5 }),
                ]),
            ],
            marks: [.init(x: 250, label: "gpu.xid"), .init(x: 10_000, label: "outside")])
    }

    @Test func theDocumentHasAPanelPerUnitALinePerSeriesAndTheEventsMarked() throws {
        let svg = SVGRenderer(width: 900, panelHeight: 200).render(chart())
        let document = Elements(svg)
        #expect(document.failure == nil, "not well-formed XML")
        let root = try #require(document.all.first)
        #expect(root.name == "svg" && root.attributes["width"] == "900" && root.attributes["height"] == String(28 + 2 * 200))
        #expect(document.withClass("panel").map { $0["data-title"] } == ["loss", "hw.gpu.utilization"])
        let lines = document.withClass("series")
        #expect(lines.map { $0["data-key"] } == ["loss", "system/hw.gpu.utilization{index=\"0\"}", "system/hw.gpu.utilization{index=\"1\"}"])
        // Two lines of one panel in two colours.
        #expect(lines[1]["stroke"] != lines[2]["stroke"])
        // The event inside the run, in both panels; the one past its end nowhere.
        #expect(document.withClass("event").count == 2)
        // Every point inside the picture.
        for line in lines {
            for pair in (line["points"] ?? "").split(separator: " ") {
                let xy = pair.split(separator: ",").compactMap { Double($0) }
                #expect(xy.count == 2 && (0...900).contains(xy[0]) && (0...428).contains(xy[1]))
            }
        }
        // The share's axis in percent, up to 100 %.
        let yLabels = svg.components(separatedBy: "class=\"y-tick\"").dropFirst().compactMap { $0.split(separator: ">").dropFirst().first?.split(separator: "<").first }
        #expect(yLabels.contains("100%"))
        // The title escaped, not broken.
        #expect(svg.contains("run &lt;1&gt; &amp; co"))
    }

    @Test func aStepOfTheLineIsDrawnWhereItHappened() throws {
        // GPU 0 drops from 90 % to 30 % at step 250: the line's points left of the event's x are
        // high, right of it low.
        let svg = SVGRenderer(width: 900, panelHeight: 200).render(chart())
        let document = Elements(svg)
        let event = try #require(document.withClass("event").last)
        let eventX = try #require(Double(event["x1"] ?? ""))
        let line = try #require(document.withClass("series").first { $0["data-key"]?.contains("index=\"0\"") == true })
        let points = (line["points"] ?? "").split(separator: " ").map { $0.split(separator: ",").compactMap { Double($0) } }
        let before = points.filter { $0[0] < eventX - 2 }.map { $0[1] }
        let after = points.filter { $0[0] > eventX + 2 }.map { $0[1] }
        // Lower values are further down the picture.
        #expect(!before.isEmpty && !after.isEmpty)
        #expect(before.max()! < after.min()!)
    }

    @Test func aChartWithNoPointsSaysSo() {
        let svg = SVGRenderer().render(Chart(title: "empty", axis: .time, panels: []))
        #expect(svg.contains("No points to draw."))
        #expect(Elements(svg).failure == nil)
    }

    /// What a trainer may log (float32's largest as a placeholder, a float64 past it) or a client
    /// may stamp (steps near 2^64) is drawn, not a crash: the agent's page draws it too.
    @Test func valuesAndStepsAtTheEdgesOfWhatNumbersHoldAreDrawn() {
        let extremes: [[Double]] = [
            [0, 3.4e38], [-1e38, 1e38], [1e308, -1e308], [1.7e308, 1.7e308], [-5e300, -1e300], [1e-300, 2e-300], [9.3e18, 9.4e18],
        ]
        for ys in extremes {
            for unit in ["", "1", "By"] {
                let chart = Chart(
                    title: "edges", axis: .step,
                    panels: [.init(title: "x", unit: unit, series: [.init(label: "x", key: "x", xs: [0, 1.8e19], ys: ys)])])
                let svg = SVGRenderer().render(chart)
                #expect(Elements(svg).failure == nil, "\(ys) \(unit)")
                // Every coordinate a number: the line is drawn where it belongs, not at an edge.
                #expect(!svg.contains("nan") && !svg.contains("inf"), "\(ys) \(unit)")
            }
        }
        #expect(Ticks.fixed(1e38, decimals: 1).hasPrefix("1"))
        #expect(Ticks.fixed(-.infinity, decimals: 0) == "-inf")
    }
}
