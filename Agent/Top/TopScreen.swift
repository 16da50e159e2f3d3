import BoxcarAPI
import BoxcarCharts
import Glibc

/// What `boxcar top` shows of the agent's snapshot: a header line, then the machine (CPU, memory,
/// pressure, GPUs, disks, network) and the attached trainers, each line cut to the terminal's
/// width. Pure: the terminal (Terminal.swift) and the loop (TopCommand.swift) are elsewhere.
struct TopScreen {
    var snapshot: Boxcar_V1_SnapshotResponse
    /// The snapshot of the tick before, for the rate at which each trainer logs.
    var previous: Boxcar_V1_SnapshotResponse?
    /// Why the view is not live (the agent stopped answering): shown in the header.
    var problem: String?

    /// Columns of a trainer's experiment: its name, cut, and its id's first 8 characters.
    static let runColumn = 21

    /// More CPUs than this many rows of one glyph each hold: totals only.
    static let coreRows = 3

    /// The lines below the header (they scroll).
    func body(width: Int) -> [TextLine] {
        let readings = Readings(snapshot.readings)
        var body: [TextLine] = []
        body += cpu(readings, width: width)
        body += memory(readings)
        body += pressure(readings)
        body += gpus(readings)
        body += disks(readings)
        body += network(readings)
        body += trainers()
        return body
    }

    /// The top line: the host, the tick's time (or what is wrong), which of the body's lines
    /// are shown where they do not all fit (`shown`, 0-based, of `total`), and the keys.
    func header(shown: Range<Int>? = nil, of total: Int = 0) -> TextLine {
        var line = TextLine()
        line.add("boxcar top", .label)
        line.add("  " + TextLine.sanitized(snapshot.hostName))
        if let problem {
            line.add("  " + problem, .bad)
        } else if snapshot.wallclock == 0 {
            line.add("  no tick yet (sampling off or starting)", .warn)
        } else {
            line.add("  " + Self.clock(snapshot.wallclock))
            line.add("  every " + Format.number(snapshot.sampleIntervalSeconds) + " s", .dim)
        }
        if let shown { line.add("  \(shown.lowerBound + 1)-\(shown.upperBound) of \(total)", .dim) }
        line.add("   q quit  j/k scroll", .dim)
        return line
    }

    // MARK: CPU

    private func cpu(_ readings: Readings, width: Int) -> [TextLine] {
        let all = readings["system.cpu.utilization"]
        let totals = all.filter { $0.labels["cpu.logical_number"] == nil }
        var modes: [String: Double] = [:]
        for reading in totals { modes[reading.labels["cpu.mode", default: ""], default: 0] += reading.value }
        var line = TextLine()
        line.add(Self.label("CPU"), .label)
        guard !totals.isEmpty else {
            line.add("no reading", .dim)
            return [line]
        }
        let busy = Self.busy(modes)
        line.add(Format.percent(busy), Style.level(busy))
        // Steal only where a hypervisor takes some.
        for mode in ["user", "system", "iowait", "steal"] where modes[mode] != nil && (mode != "steal" || modes[mode]! >= 0.001) {
            line.add("  \(mode == "system" ? "sys" : mode) ")
            line.add(Format.percent(modes[mode] ?? 0), mode == "iowait" || mode == "steal" ? Style.level(modes[mode] ?? 0) : .plain)
        }
        let load = ["1m", "5m", "15m"].compactMap { readings.first("system.cpu.load_average." + $0)?.value }
        if !load.isEmpty { line.add("  load " + load.map { Format.fixed($0, 2) }.joined(separator: " ")) }

        // Each core's busy share: labelled where they fit on a line, else a glyph each.
        var cores: [Int: [String: Double]] = [:]
        for reading in all {
            guard let number = reading.labels["cpu.logical_number"].flatMap({ Int($0) }) else { continue }
            cores[number, default: [:]][reading.labels["cpu.mode", default: ""], default: 0] += reading.value
        }
        let numbers = cores.keys.sorted()
        let shares = numbers.map { Self.busy(cores[$0]!) }
        var lines = [line]
        let indent = Self.label("").count
        if indent + shares.count * 9 <= width {
            var row = TextLine()
            row.add(Self.label("cores"), .label)
            for (number, share) in zip(numbers, shares) {
                row.add("\(number) ", .dim)
                row.add(Format.percent(share, width: 4), Style.level(share))
                row.add("  ")
            }
            lines.append(row)
        } else {
            let perRow = max(1, width - indent)
            if shares.count <= perRow * Self.coreRows {
                for (index, start) in stride(from: 0, to: shares.count, by: perRow).enumerated() {
                    var row = TextLine()
                    row.add(index == 0 ? Self.label("cores") : Self.label(""), .label)
                    for share in shares[start..<min(start + perRow, shares.count)] {
                        row.add(Self.glyph(share), Style.level(share))
                    }
                    lines.append(row)
                }
            }
        }
        return lines
    }

    /// The share of the time not idle nor waiting on I/O.
    static func busy(_ modes: [String: Double]) -> Double {
        modes.filter { $0.key != "idle" && $0.key != "iowait" }.values.reduce(0, +)
    }

    static func glyph(_ share: Double) -> String {
        let glyphs = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
        return glyphs[min(glyphs.count - 1, max(0, Int((share * Double(glyphs.count)).rounded(.down))))]
    }

    // MARK: Memory and pressure

    private func memory(_ readings: Readings) -> [TextLine] {
        var line = TextLine()
        line.add(Self.label("Memory"), .label)
        guard let limit = readings.first("system.memory.limit")?.value, limit > 0 else {
            line.add("no reading", .dim)
            return [line]
        }
        let used = readings.first("system.memory.usage", ["system.memory.state": "used"])?.value ?? 0
        line.add(Format.bytes(used) + " of " + Format.bytes(limit) + " (")
        line.add(Format.percent(used / limit), Style.level(used / limit))
        line.add(")")
        if let cached = readings.first("system.memory.usage", ["system.memory.state": "cached"])?.value {
            line.add("  cache " + Format.bytes(cached))
        }
        if let available = readings.first("system.memory.linux.available")?.value {
            line.add("  free " + Format.bytes(available))
        }
        if let swap = readings.first("system.paging.limit")?.value, swap > 0 {
            let swapped = readings.first("system.paging.usage", ["system.paging.state": "used"])?.value ?? 0
            line.add("  swap " + Format.bytes(swapped) + " of " + Format.bytes(swap))
        }
        return [line]
    }

    private func pressure(_ readings: Readings) -> [TextLine] {
        let stalls = readings["system.pressure.avg10"]
        guard !stalls.isEmpty else { return [] }
        var line = TextLine()
        line.add(Self.label("Pressure"), .label)
        for resource in ["cpu", "memory", "io"] {
            guard let some = stalls.first(where: { $0.labels["resource"] == resource && $0.labels["kind"] == "some" }) else { continue }
            line.add("\(resource) ")
            line.add(Format.percent(some.value), Style.level(some.value * 2))
            line.add("  ")
        }
        line.add("(stalled, last 10 s)", .dim)
        return [line]
    }

    // MARK: GPUs

    private func gpus(_ readings: Readings) -> [TextLine] {
        let indices = Set(readings["hw.gpu.utilization"].compactMap { $0.labels["index"] }
            + readings["hw.gpu.memory.limit"].compactMap { $0.labels["index"] })
            .sorted { (Int($0) ?? 0, $0) < (Int($1) ?? 0, $1) }
        var heading = TextLine()
        heading.add(Self.label("GPU"), .label)
        guard !indices.isEmpty else {
            heading.add("none (`boxcar doctor` says why)", .dim)
            return [heading]
        }
        heading.add("util".padded(5, left: true) + "  memory".padded(22) + "power".padded(16) + "temp".padded(7) + "clocks held by", .dim)
        var lines = [heading]
        for index in indices {
            let gpu = ["index": index]
            var line = TextLine()
            line.add(Self.label("  " + index))
            let utilization = readings.first("hw.gpu.utilization", gpu, without: "hw.gpu.task")?.value
            line.add(utilization.map { Format.percent($0, width: 5) } ?? "    –", utilization.map(Style.level) ?? .dim)
            let used = readings.first("hw.gpu.memory.usage", gpu)?.value
            let total = readings.first("hw.gpu.memory.limit", gpu)?.value
            var memory = "  " + (used.map(Format.bytes) ?? "–") + " / " + (total.map(Format.bytes) ?? "–")
            memory = memory.padded(22)
            line.add(memory, used.flatMap { used in total.map { Style.level(used / max($0, 1)) } } ?? .plain)
            let power = readings.first("hw.power", gpu)?.value
            let cap = readings.first("hw.power.limit", gpu)?.value
            line.add(((power.map { Format.fixed($0, 0) } ?? "–") + " / " + (cap.map { Format.fixed($0, 0) + " W" } ?? "– W")).padded(16),
                     power.flatMap { power in cap.map { Style.level(power / max($0, 1)) } } ?? .plain)
            // AMD has a sensor per location: the edge's, else the hottest.
            let temperatures = readings["hw.temperature"].filter { $0.labels["index"] == index }
            let temperature = temperatures.first { $0.labels["hw.sensor_location"] == "edge" } ?? temperatures.max { $0.value < $1.value }
            line.add((temperature.map { Format.fixed($0.value, 0) + "°C" } ?? "–").padded(7),
                     temperature.map { $0.value >= 85 ? .bad : $0.value >= 75 ? .warn : .plain } ?? .plain)
            let held = readings["hw.gpu.clocks_event"].filter { $0.labels["index"] == index && $0.value > 0 }
                .compactMap { $0.labels["reason"] }.sorted()
            if held.isEmpty {
                line.add("–", .dim)
            } else {
                line.add(held.joined(separator: ","), held == ["gpu_idle"] ? .dim : .bad)
            }
            lines.append(line)
        }
        return lines
    }

    // MARK: Disks and network

    private func disks(_ readings: Readings) -> [TextLine] {
        let io = readings["system.disk.io.rate"]
        let devices = Set(io.compactMap { $0.labels["system.device"] }).sorted()
        return devices.enumerated().map { number, device in
            var line = TextLine()
            line.add(Self.label(number == 0 ? "Disk" : ""), .label)
            line.add(TextLine.sanitized(device).padded(12))
            for direction in ["read", "write"] {
                let rate = io.first { $0.labels["system.device"] == device && $0.labels["disk.io.direction"] == direction }?.value ?? 0
                line.add(" \(direction) " + Format.rate(rate).padded(10, left: true))
            }
            if let busy = readings.first("system.disk.busy", ["system.device": device])?.value {
                line.add("  busy ")
                line.add(Format.percent(busy), Style.level(busy))
            }
            return line
        }
    }

    private func network(_ readings: Readings) -> [TextLine] {
        let io = readings["system.network.io.rate"]
        // An InfiniBand port is its device and port.
        func name(_ reading: Readings.Reading) -> String {
            let interface = reading.labels["network.interface.name", default: "?"]
            return reading.labels["port"].map { interface + "/" + $0 } ?? interface
        }
        let interfaces = Set(io.map(name)).sorted()
        return interfaces.enumerated().map { number, interface in
            var line = TextLine()
            line.add(Self.label(number == 0 ? "Network" : ""), .label)
            line.add(TextLine.sanitized(interface).padded(12))
            for (direction, shown) in [("receive", "rx"), ("transmit", "tx")] {
                let rate = io.first { name($0) == interface && $0.labels["network.io.direction"] == direction }?.value ?? 0
                line.add(" \(shown) " + Format.rate(rate).padded(10, left: true))
            }
            return line
        }
    }

    // MARK: Trainers

    private func trainers() -> [TextLine] {
        var heading = TextLine()
        heading.add(Self.label("Trainers"), .label)
        guard !snapshot.trainers.isEmpty else {
            heading.add("none attached (the SDK attaches a run's process)", .dim)
            return [heading]
        }
        heading.add(
            "experiment".padded(Self.runColumn) + "pid".padded(8) + "cpu".padded(6, left: true) + "memory".padded(10, left: true)
                + "gpu mem".padded(10, left: true) + "procs".padded(7, left: true) + "pts/s".padded(8, left: true), .dim)
        var lines = [heading]
        let seconds = previous.map { Double(snapshot.countedAt - $0.countedAt) / 1e9 } ?? 0
        for trainer in snapshot.trainers {
            let readings = Readings(trainer.readings)
            var line = TextLine()
            line.add(Self.label(""))
            // Its name, and its id's first characters as git shortens a commit's (`boxcar
            // experiments` has it whole).
            let id = TextLine.sanitized(String(trainer.experimentID.prefix(8)))
            var name = TextLine.sanitized(trainer.experimentName)
            let room = Self.runColumn - id.count - 2
            if name.columns > room { name = name.cut(toColumns: room - 1) + "…" }
            line.add(name.isEmpty ? "" : name + " ")
            line.add(id.padded(Self.runColumn - (name.isEmpty ? 0 : name.columns + 1)), .dim)
            line.add(String(trainer.pid).padded(8))
            let cpu = readings.first("process.cpu.utilization")?.value
            line.add((cpu.map { Format.percent($0) } ?? "–").padded(6, left: true), cpu.map(Style.level) ?? .dim)
            line.add((readings.first("process.memory.usage").map { Format.bytes($0.value) } ?? "–").padded(10, left: true))
            let gpuMemory = readings["hw.gpu.process.memory.usage"].map(\.value)
            line.add((gpuMemory.isEmpty ? "–" : Format.bytes(gpuMemory.reduce(0, +))).padded(10, left: true))
            line.add(String(trainer.processes).padded(7, left: true))
            let before = previous?.trainers.first { $0.experimentID == trainer.experimentID && $0.pid == trainer.pid }
            if let before, seconds > 0, trainer.pointsLogged >= before.pointsLogged {
                line.add(Format.count(Double(trainer.pointsLogged - before.pointsLogged) / seconds).padded(8, left: true))
            } else {
                line.add("…".padded(8, left: true), .dim)
            }
            lines.append(line)
        }
        return lines
    }

    // MARK: Helpers

    /// A section's label, padded so that what follows lines up.
    static func label(_ text: String) -> String { text.padded(10) }

    /// Local time of day: hh:mm:ss.
    static func clock(_ nanoseconds: Int64) -> String {
        var seconds = time_t(nanoseconds / 1_000_000_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }
}

/// The snapshot's readings by name.
struct Readings {
    private let byName: [String: [Reading]]

    struct Reading {
        var labels: [String: String]
        var value: Double
    }

    init(_ readings: [Boxcar_V1_Reading]) {
        byName = Dictionary(grouping: readings, by: \.name).mapValues { $0.map { Reading(labels: $0.labels, value: $0.value) } }
    }

    subscript(name: String) -> [Reading] { byName[name] ?? [] }

    /// The first reading of `name` whose labels hold `labels` (and not the label `without`).
    func first(_ name: String, _ labels: [String: String] = [:], without: String? = nil) -> Reading? {
        self[name].first { reading in
            labels.allSatisfy { reading.labels[$0.key] == $0.value } && without.map { reading.labels[$0] == nil } ?? true
        }
    }
}

/// How a part of a line is drawn. Colour says how full or hot something is; without colour
/// (NO_COLOR, not a terminal) the same text is there.
enum Style {
    case plain, label, dim, good, warn, bad

    /// A share of something (0…1) by how close to full it is.
    static func level(_ share: Double) -> Style { share >= 0.9 ? .bad : share >= 0.7 ? .warn : .good }

    var sgr: String? {
        switch self {
        case .plain: nil
        case .label: "1"
        case .dim: "2"
        case .good: "32"
        case .warn: "33"
        case .bad: "31"
        }
    }
}

/// A line of the screen as styled parts.
struct TextLine {
    var parts: [(text: String, style: Style)] = []

    mutating func add(_ text: String, _ style: Style = .plain) {
        parts.append((text, style))
    }

    var plain: String { parts.map(\.text).joined() }

    /// The line cut to `width` columns, coloured with SGR where `colour`.
    func rendered(width: Int, colour: Bool) -> String {
        var out = ""
        var left = width
        for (text, style) in parts where left > 0 {
            var piece = ""
            for character in text {
                let columns = TextLine.columns(character)
                guard columns <= left else { left = 0; break }
                piece.append(character)
                left -= columns
            }
            if colour, let sgr = style.sgr, !piece.isEmpty {
                out += "\u{1B}[" + sgr + "m" + piece + "\u{1B}[0m"
            } else {
                out += piece
            }
        }
        return out
    }

    /// The columns a character takes in a terminal: 2 for East Asian wide and emoji, 0 for
    /// marks that combine with the one before, else 1.
    static func columns(_ character: Character) -> Int {
        guard let scalar = character.unicodeScalars.first else { return 0 }
        if scalar.value < 0x300 { return 1 }
        switch scalar.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format: return 0
        default: break
        }
        if scalar.properties.isEmojiPresentation { return 2 }
        switch scalar.value {
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
             0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x20000...0x3FFFD:
            return 2
        default:
            return 1
        }
    }

    /// A name from a client (an experiment's, a device's) with its control characters made
    /// visible: an escape sequence in a run's name must not drive the terminal.
    static func sanitized(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }
}

/// Numbers as top shows them.
enum Format {
    /// `value` with `decimals` digits after the point (the charts' ticks' rounding), and what a
    /// reading may be that a tick never is: not a number, infinite, past what Int64 holds.
    static func fixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "–" : value > 0 ? "∞" : "-∞" }
        guard abs(value) < 1e15 else { return String(value) }
        return Ticks.fixed(value, decimals: decimals)
    }

    /// A share as a percentage with one decimal below 10 %: "4.2%", "37%"; padded on the left to `width`.
    static func percent(_ share: Double, width: Int = 0) -> String {
        let percent = share * 100
        let text = (abs(percent) < 9.95 ? fixed(percent, 1) : fixed(percent, 0)) + "%"
        return text.padded(width, left: true)
    }

    /// A whole number where it is one ("1", "0.5").
    static func number(_ value: Double) -> String {
        value == value.rounded() ? fixed(value, 0) : fixed(value, 2)
    }

    /// Bytes in binary units: "512 B", "4.1 GiB".
    static func bytes(_ value: Double) -> String {
        scaled(value, base: 1024, units: ["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
    }

    /// Bytes per second in decimal units, as network and disk speeds are quoted: "12.3 MB/s".
    static func rate(_ value: Double) -> String {
        scaled(value, base: 1000, units: ["B/s", "kB/s", "MB/s", "GB/s", "TB/s"])
    }

    /// A count per second: "840", "12.3k", "2.5M".
    static func count(_ value: Double) -> String {
        var text = scaled(value, base: 1000, units: ["", "k", "M", "G"])
        text.removeAll { $0 == " " }
        return text
    }

    private static func scaled(_ value: Double, base: Double, units: [String]) -> String {
        var value = value
        var unit = 0
        while abs(value) >= base * 0.995 && unit < units.count - 1 {
            value /= base
            unit += 1
        }
        let digits = unit == 0 || abs(value) >= 99.5 ? 0 : 1
        return fixed(value, digits) + " " + units[unit]
    }
}

extension String {
    /// The terminal columns it takes.
    var columns: Int { reduce(0) { $0 + TextLine.columns($1) } }

    /// Its first characters that fit in `width` columns.
    func cut(toColumns width: Int) -> String {
        var left = width
        return String(prefix { character in
            left -= TextLine.columns(character)
            return left >= 0
        })
    }

    /// Padded with spaces to `width` columns (on the left where `left`); never cut.
    func padded(_ width: Int, left: Bool = false) -> String {
        let columns = self.columns
        guard columns < width else { return self }
        let spaces = String(repeating: " ", count: width - columns)
        return left ? spaces + self : self + spaces
    }
}
