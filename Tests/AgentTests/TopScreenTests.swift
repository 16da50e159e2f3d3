import BoxcarAPI
import Testing

@testable import boxcar

/// What `boxcar top` draws of a snapshot, without a terminal: every line within the width at any
/// width, a big machine's CPUs as glyphs, a run's name that cannot drive the terminal, the rate at
/// which a trainer logs, and the keys read from what a terminal sends.
@Suite struct TopScreenTests {
    static func reading(_ name: String, _ labels: [String: String] = [:], _ value: Double) -> Boxcar_V1_Reading {
        .with {
            $0.name = name
            $0.labels = labels
            $0.value = value
        }
    }

    /// A machine of `cpus` CPUs and `gpus` GPUs, one trainer logging.
    static func snapshot(cpus: Int, gpus: Int, wallclock: Int64 = 1_764_756_000_000_000_000, points: UInt64 = 0, name: String = "resnet") -> Boxcar_V1_SnapshotResponse {
        var readings: [Boxcar_V1_Reading] = []
        for (mode, share) in [("user", 0.42), ("system", 0.08), ("iowait", 0.01), ("idle", 0.49)] {
            readings.append(reading("system.cpu.utilization", ["cpu.mode": mode], share))
        }
        // CPU n is busy n % 10 tenths of the time.
        for cpu in 0..<cpus {
            let busy = Double(cpu % 10) / 10
            for (mode, share) in [("user", busy), ("iowait", 0.0), ("idle", 1 - busy)] {
                readings.append(reading("system.cpu.utilization", ["cpu.mode": mode, "cpu.logical_number": String(cpu)], share))
            }
        }
        readings += [
            reading("system.memory.limit", [:], 2_000_000_000_000),
            reading("system.memory.usage", ["system.memory.state": "used"], 1_500_000_000_000),
            reading("system.pressure.avg10", ["kind": "some", "resource": "io"], 0.12),
        ]
        for gpu in 0..<gpus {
            let index = ["index": String(gpu)]
            readings += [
                reading("hw.gpu.utilization", index, 0.97),
                reading("hw.gpu.memory.usage", index, 61e9),
                reading("hw.gpu.memory.limit", index, 80e9),
                reading("hw.power", index, 312),
                reading("hw.power.limit", index, 700),
                reading("hw.temperature", index, 71),
                reading("hw.gpu.clocks_event", index.merging(["reason": "sw_power_cap"]) { a, _ in a }, gpu == 0 ? 1 : 0),
            ]
        }
        for disk in ["nvme0n1", "nvme1n1"] {
            readings.append(reading("system.disk.io.rate", ["system.device": disk, "disk.io.direction": "read"], 1.2e9))
        }
        readings.append(reading("system.network.io.rate", ["network.interface.name": "mlx5_0", "port": "1", "network.io.direction": "receive"], 12.5e9))
        return .with {
            $0.wallclock = wallclock
            $0.countedAt = wallclock
            $0.sampleIntervalSeconds = 1
            $0.hostName = "gpu-node-17"
            $0.readings = readings
            $0.trainers = [.with {
                $0.experimentID = "0f3c9a7e2b1d4c5a"
                $0.experimentName = name
                $0.pid = 4242
                $0.processes = 9
                $0.pointsLogged = points
                $0.readings = [
                    reading("process.cpu.utilization", ["process.pid": "4242"], 0.195),
                    reading("process.memory.usage", ["process.pid": "4242"], 4.4e9),
                ]
            }]
        }
    }

    @Test(arguments: [(2, 1), (16, 2), (192, 8), (512, 16)])
    func everyLineFitsAnyWidth(cpus: Int, gpus: Int) {
        let screen = TopScreen(snapshot: Self.snapshot(cpus: cpus, gpus: gpus, name: "名前がとても長い実験 \u{1B}[31m"))
        for width in [20, 40, 60, 80, 100, 200] {
            for line in [screen.header(shown: 0..<10, of: 40)] + screen.body(width: width) {
                for colour in [false, true] {
                    let text = line.rendered(width: width, colour: colour)
                    let visible = text.replacing(/\x1B\[[0-9;]*m/, with: "")
                    #expect(visible.reduce(0) { $0 + TextLine.columns($1) } <= width, "\(visible)")
                    // The run's name carried an escape: it is shown, not obeyed.
                    #expect(!visible.contains("\u{1B}"))
                }
            }
        }
    }

    @Test func aRunsNameCannotDriveTheTerminal() {
        // An OSC sequence (set the window's title) early in a short name: shown, not obeyed.
        let screen = TopScreen(snapshot: Self.snapshot(cpus: 2, gpus: 0, name: "a\u{1B}]0;pwn\u{07}b"))
        let row = screen.body(width: 100).map { $0.rendered(width: 100, colour: true) }.first { $0.contains("pwn") } ?? ""
        #expect(row.contains("a?]0;pwn?b") && !row.contains("\u{07}"), "\(row)")
    }

    @Test func aCoreIsLabelledWithItsOwnNumber() {
        // CPUs 0 and 2 online, 1 offline (SMT off): the second shown is CPU 2.
        var snapshot = Self.snapshot(cpus: 3, gpus: 0)
        snapshot.readings.removeAll { $0.labels["cpu.logical_number"] == "1" }
        let cores = TopScreen(snapshot: snapshot).body(width: 80).map(\.plain).first { $0.hasPrefix("cores") } ?? ""
        #expect(cores.contains("0 0.0%  2  20%") && !cores.contains("1 "), "\(cores)")
    }

    @Test func cpusAreLabelledWhereTheyFitAndGlyphsWhereTheyDoNot() {
        let few = TopScreen(snapshot: Self.snapshot(cpus: 4, gpus: 0)).body(width: 80).map(\.plain)
        let cores = few.first { $0.hasPrefix("cores") }
        #expect(cores?.contains("0 0.0%  1  10%  2  20%  3  30%") == true, "\(few)")
        #expect(few.first { $0.hasPrefix("CPU") }?.contains("50%  user 42%  sys 8.0%  iowait 1.0%") == true, "\(few)")

        let many = TopScreen(snapshot: Self.snapshot(cpus: 192, gpus: 0)).body(width: 80).map(\.plain)
        let rows = many.filter { $0.hasPrefix("cores") || ($0.hasPrefix("          ") && $0.contains("▁")) }
        #expect(rows.count == 3, "\(many)")  // 192 glyphs, 70 to a row
        #expect(rows.joined().filter { "▁▂▃▄▅▆▇█".contains($0) }.count == 192)

        let huge = TopScreen(snapshot: Self.snapshot(cpus: 512, gpus: 0)).body(width: 80).map(\.plain)
        #expect(!huge.contains { $0.hasPrefix("cores") }, "totals only")
    }

    @Test func gpusShowWhatHoldsTheirClocks() {
        let lines = TopScreen(snapshot: Self.snapshot(cpus: 2, gpus: 2)).body(width: 100).map(\.plain)
        let gpus = lines.filter { $0.hasPrefix("  0") || $0.hasPrefix("  1") }
        #expect(gpus.count == 2)
        #expect(gpus[0].contains("97%") && gpus[0].contains("56.8 GiB / 74.5 GiB") && gpus[0].contains("312 / 700 W")
            && gpus[0].contains("71°C") && gpus[0].hasSuffix("sw_power_cap"), "\(gpus[0])")
        #expect(gpus[1].hasSuffix("–"), "\(gpus[1])")
        #expect(lines.contains { $0.hasPrefix("Network   mlx5_0/1") && $0.contains("rx  12.5 GB/s") })

        let none = TopScreen(snapshot: Self.snapshot(cpus: 2, gpus: 0)).body(width: 100).map(\.plain)
        #expect(none.contains { $0.hasPrefix("GPU") && $0.contains("boxcar doctor") })
    }

    @Test func aTrainersPointsPerSecondComeFromTwoTicks() {
        var screen = TopScreen(snapshot: Self.snapshot(cpus: 2, gpus: 0, points: 1_000))
        let row = { screen.body(width: 100).map(\.plain).first { $0.contains("resnet") } ?? "" }
        #expect(row().contains("…"), "no rate from one tick")
        screen.previous = screen.snapshot
        screen.snapshot = Self.snapshot(cpus: 2, gpus: 0, wallclock: 1_764_756_002_000_000_000, points: 25_000)
        #expect(row().hasSuffix("12.0k"), "24,000 points in 2 s: \(row())")
        #expect(row().contains("resnet 0f3c9a7e") && row().contains("4242") && row().contains("20%") && row().contains("4.1 GiB"), "\(row())")
    }

    @Test func aFailingAgentIsSaidInTheHeader() {
        var screen = TopScreen(snapshot: Self.snapshot(cpus: 2, gpus: 0))
        screen.problem = "the agent does not answer: unavailable"
        #expect(screen.header().plain.contains("the agent does not answer"))
        #expect(screen.header(shown: 3..<10, of: 30).plain.contains("4-10 of 30"))
    }

    @Test func numbers() {
        #expect(Format.percent(0.0042) == "0.4%" && Format.percent(0.37) == "37%" && Format.percent(1) == "100%")
        #expect(Format.bytes(512) == "512 B" && Format.bytes(4.4e9) == "4.1 GiB" && Format.bytes(1023.9 * 1024) == "1.0 MiB")
        #expect(Format.rate(0) == "0 B/s" && Format.rate(12.5e9) == "12.5 GB/s" && Format.rate(999_999) == "1.0 MB/s")
        #expect(Format.count(840) == "840" && Format.count(12_345) == "12.3k")
        #expect(Format.fixed(-0.04, 1) == "0.0")
        #expect(Format.fixed(2.25, 1) == "2.3" && Format.fixed(-1.5, 0) == "-2")
        #expect(Format.fixed(.nan, 1) == "–")
    }

    @Test func keysFromWhatATerminalSends() {
        #expect(Terminal.parseKeys(Array("qjkgG ".utf8)) == [.quit, .down, .up, .home, .end, .pageDown])
        #expect(Terminal.parseKeys([0x1B, 0x5B, 0x41, 0x1B, 0x5B, 0x42]) == [.up, .down])
        #expect(Terminal.parseKeys([0x1B, 0x4F, 0x41]) == [.up], "application cursor mode")
        #expect(Terminal.parseKeys(Array("\u{1B}[5~\u{1B}[6~".utf8)) == [.pageUp, .pageDown])
        #expect(Terminal.parseKeys([0x1B]) == [], "a lone escape is no key")
        #expect(Terminal.parseKeys(Array("\u{1B}[1;5Aq".utf8)) == [.up, .quit], "a modified arrow, then q")
    }
}
