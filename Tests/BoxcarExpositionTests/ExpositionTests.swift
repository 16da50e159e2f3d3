#if canImport(Glibc)
import Glibc
#endif
@testable import BoxcarExposition
import BoxcarModel
import BoxcarSampling
import BoxcarSensors
import BoxcarTestSupport
import Foundation
import Testing

@Suite struct ExpositionNameTests {
    /// Every family the agent can expose, the machine's and its own.
    static let families = (ExpositionNames.entries + ExpositionNames.treeEntries).map(\.family) + AgentHealth.families

    @Test func namesFollowPrometheusRules() {
        let valid = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
        for family in Self.families {
            #expect(family.name.wholeMatch(of: valid) != nil, "\(family.name)")
            // Prometheus' tools read these suffixes as parts of counters and histograms.
            if family.type == .gauge || family.type == .info {
                for suffix in ["_count", "_total", "_sum", "_bucket", "_created", "_info"] {
                    #expect(!family.name.hasSuffix(suffix), "gauge \(family.name) ends in \(suffix)")
                }
            }
            if family.type == .counter { #expect(!family.name.hasSuffix("_total"), "\(family.name): the writer adds _total") }
            // OpenMetrics: a family with a unit ends in it.
            if let unit = family.unit { #expect(family.name.hasSuffix("_" + unit), "\(family.name) lacks its unit \(unit)") }
            // Help is written as is in both formats: no quotes, backslashes or newlines.
            #expect(!family.help.contains(where: { "\"\\\n".contains($0) }), "\(family.name)'s help")
        }
        #expect(Set(Self.families.map(\.name)).count == Self.families.count, "a family name is used twice")
        #expect(Set(ExpositionNames.entries.map(\.series)).count == ExpositionNames.entries.count)
    }

    @Test func theReadmeTablesAreTheNamesTheExporterUses() throws {
        let readme = try String(contentsOfFile: checkoutDirectory + "/README.md", encoding: .utf8)
        let start = try #require(readme.range(of: ExpositionNames.readmeStart + "\n"), "README.md lost its exposition section")
        let end = try #require(readme.range(of: ExpositionNames.readmeEnd, range: start.upperBound..<readme.endIndex))
        #expect(String(readme[start.upperBound..<end.lowerBound]) == ExpositionNames.markdownTables(),
                "the README's exposition tables are out of date: run Scripts/generate-settings-docs.sh")
    }

    @Test func unitsAreWrittenWhereTheNamesSaySo() {
        // Names that end in a unit word carry it as their unit, so OpenMetrics says it.
        for family in Self.families {
            for unit in ["bytes", "seconds", "ratio", "celsius", "watts", "joules", "hertz"] where family.name.hasSuffix("_" + unit) {
                #expect(family.unit != nil, "\(family.name) ends in _\(unit) but has no unit")
            }
        }
    }

    @Test func theRatesLeftOutHaveTheirCountersExposed() {
        for (rate, counter) in ExpositionNames.notExposed {
            #expect(ExpositionNames.bySeries[rate] == nil, "\(rate) is both exposed and left out")
            #expect(ExpositionNames.bySeries[counter]?.family.type == .counter || rate == "process.count", "\(rate)'s stand-in \(counter)")
        }
    }

    /// Every series a sensor gives, read from the fixture trees (and the fake NVML library), is
    /// exposed or has its counter exposed in its stead: a sensor's new series cannot be left off
    /// the page unnoticed.
    @Test func everySeriesTheSensorsGiveHasAName() throws {
        let fixtures = fixturesDirectory
        var readings: [Reading] = []
        func twice(_ sensor: any Sensor) {
            _ = try? sensor.sample(elapsed: nil)
            readings += (try? sensor.sample(elapsed: .seconds(1))) ?? []
        }
        for sensor in hostSensors(procRoot: fixtures + "/proc-b", sysRoot: fixtures + "/sys") { twice(sensor) }
        twice(CgroupSensor(procRoot: fixtures + "/proc-cg", sysRoot: fixtures + "/sys-cg-a"))
        twice(CgroupSensor(procRoot: fixtures + "/proc-v1", sysRoot: fixtures + "/sys-v1-a"))
        twice(InfiniBandSensor(sysRoot: fixtures + "/sys-ib-a"))
        twice(AMDGPUSensor(sysRoot: fixtures + "/sys-amd"))
        twice(FilesystemSensor(procRoot: fixtures + "/proc-fs") { _ in
            .init(totalBytes: 1000, freeBytes: 400, availableBytes: 300, totalInodes: 100, freeInodes: 90)
        })
        let tree = ProcessTreeSensor(procRoot: fixtures + "/proc-tree-a", clockTicksPerSecond: 100, pageSize: 4096, cpuCount: 4)
        _ = tree.sample(roots: [100], seconds: 0)
        readings += tree.sample(roots: [100], seconds: 1)[100] ?? []
        readings += try nvidiaReadings()

        let names = Set(readings.map(\.name))
        for expected in [
            "system.cpu.time", "system.disk.io", "container.cpu.time", "process.cpu.time", "hw.energy", "hw.gpu.mig.memory.usage",
            "system.process.count", "system.memory.oom_kills", "system.file_handles.usage",
            "system.network.tcp.retransmits", "system.network.sockets",
        ] {
            #expect(names.contains(expected), "the fixtures give no \(expected)")
        }
        for name in names.sorted() {
            let standIn = ExpositionNames.counter(standingFor: name).flatMap { ExpositionNames.bySeries[$0] }
            #expect(ExpositionNames.bySeries[name] != nil || standIn != nil, "\(name) has no exposition name")
        }
    }

    /// The fake NVML library, copied with a script of its own (a copy is a library of its own,
    /// so this does not share the fake's state with the sensor's tests).
    /// The exporter's families and the agent's table of series agree on what is a counter.
    @Test func countersOnThePageAreTheTablesCounters() {
        for entry in ExpositionNames.entries {
            guard let metric = MachineMetrics.byName[entry.series] else {
                Issue.record("\(entry.series) is not in MachineMetrics")
                continue
            }
            #expect((entry.family.type == .counter) == (metric.kind == .counter), "\(entry.series)")
        }
    }

    func nvidiaReadings() throws -> [Reading] {
        let directory = TemporaryDirectory()
        let library = directory.path + "/libnvidia-ml.so.1"
        try FileManager.default.copyItem(atPath: fakeNVMLLibrary, toPath: library)
        let script = """
            gpus 1
            0 mig 1
            0 mig.instance 0 1000 2000
            0 process \(getpid()) 4096
            0 nvlink 0 1 1 0 0 0 0
            0 gpm 1
            0 encoder 1
            0 violation.power 1

            """
        try script.write(toFile: library + ".script", atomically: true, encoding: .utf8)
        let sensor = try NVIDIAGPUSensor(library: try NVMLLibrary.load(path: library))
        _ = sensor.sample(processes: [getpid()])
        return sensor.sample(processes: [getpid()])  // the second: the rates too
    }
}

@Suite struct ExpositionWriterTests {
    let gauge = Family("x_bytes", .gauge, unit: "bytes", help: "A \\ help")
    let counter = Family("y_seconds", .counter, unit: "seconds", help: "Y")

    func text(_ format: ExpositionFormat, _ body: (inout ExpositionWriter) -> Void) -> String {
        var writer = ExpositionWriter(format: format)
        body(&writer)
        return String(decoding: writer.finish(), as: UTF8.self)
    }

    @Test func theTextFormatNamesCountersWithTotalAndEscapesLabelValues() {
        let page = text(.prometheusText) { writer in
            writer.family(gauge)
            writer.sample(gauge, labels: [("path", "a\"b\\c\nd"), ("network.io.direction", "up")], value: 1536)
            writer.family(counter)
            writer.sample(counter, value: 0.25)
        }
        #expect(page == """
            # HELP x_bytes A \\\\ help
            # TYPE x_bytes gauge
            x_bytes{path="a\\"b\\\\c\\nd",network_io_direction="up"} 1536
            # HELP y_seconds_total Y
            # TYPE y_seconds_total counter
            y_seconds_total 0.25

            """)
    }

    @Test func openMetricsNamesFamiliesWithoutTotalGivesUnitsAndEnds() {
        let info = Family("system_disk", .info, help: "Disks")
        let page = text(.openMetrics) { writer in
            writer.family(counter)
            writer.sample(counter, value: 3)
            writer.family(info)
            writer.sample(info, labels: [("device", "vda")], value: 1)
        }
        #expect(page == """
            # HELP y_seconds Y
            # TYPE y_seconds counter
            # UNIT y_seconds seconds
            y_seconds_total 3
            # HELP system_disk Disks
            # TYPE system_disk info
            system_disk_info{device="vda"} 1
            # EOF

            """)
    }

    @Test func valuesAreWrittenAsBothParsersReadThem() {
        let page = text(.prometheusText) { writer in
            for value in [0, -3, 1e16, 123_456_789_012, 0.1, 1e-7, .nan, .infinity, -.infinity] {
                writer.sample(gauge, value: value)
            }
        }
        let values = page.split(separator: "\n").map { $0.split(separator: " ").last.map(String.init) ?? "" }
        #expect(values == ["0", "-3", "1e+16", "123456789012", "0.1", "1e-07", "NaN", "+Inf", "-Inf"])
    }

    @Test func theScraperChoosesTheFormat() {
        #expect(ExpositionFormat.negotiate(accept: nil) == .prometheusText)
        #expect(ExpositionFormat.negotiate(accept: "text/plain;version=0.0.4") == .prometheusText)
        #expect(ExpositionFormat.negotiate(accept: "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5") == .openMetrics)
        #expect(ExpositionFormat.negotiate(accept: "application/openmetrics-text; q=0, text/plain") == .prometheusText)
    }
}

@Suite struct MachinePageTests {
    func process(_ pid: Int32, cpu: Double, threads: Double = 1) -> ProcessTreeSensor.ProcessSample {
        .init(pid: pid, cpuSeconds: Double(pid), cpuUtilization: cpu, residentBytes: 100, threads: threads, descriptors: 3, readBytes: 10, writeBytes: 20)
    }

    @Test func aTrainerShowsItsBusiestProcessesAndTheRestSummed() {
        let processes = (1...70).map { process(Int32($0), cpu: Double($0) / 100) }
        let gpu = [
            Reading("hw.gpu.process.memory.usage", [.init("index", "0"), .init("process.pid", "70")], 1000),
            Reading("hw.gpu.process.memory.usage", [.init("index", "0"), .init("process.pid", "1")], 10),
            Reading("hw.gpu.process.memory.usage", [.init("index", "0"), .init("process.pid", "2")], 20),
        ]
        let snapshot = MachineSnapshot(
            wallclock: 1, host: [Reading("system.memory.limit", [], 8)],
            trainers: [.init(experimentID: "e1", pid: 1, processes: processes, readings: gpu + [Reading("process.count", [.init("process.pid", "1")], 70)])],
            sensors: [])
        var writer = ExpositionWriter(format: .prometheusText)
        MachinePage.write(snapshot, into: &writer)
        let lines = String(decoding: writer.finish(), as: UTF8.self).split(separator: "\n")
        let threads = lines.filter { $0.hasPrefix("process_threads{") }
        #expect(threads.count == 65)
        // The busiest are 7…70; 1…6 (21 CPU-seconds, six threads) are `other`.
        #expect(threads.contains(#"process_threads{experiment_id="e1",process_pid="7"} 1"#))
        #expect(!threads.contains { $0.contains(#"pid="6""#) })
        #expect(threads.contains(#"process_threads{experiment_id="e1",process_pid="other"} 6"#))
        #expect(lines.contains(#"process_cpu_time_seconds_total{experiment_id="e1",process_pid="other"} 21"#))
        // GPU memory: the busiest's own, the others' summed per GPU.
        #expect(lines.contains(#"hw_gpu_process_memory_usage_bytes{experiment_id="e1",index="0",process_pid="70"} 1000"#))
        #expect(lines.contains(#"hw_gpu_process_memory_usage_bytes{experiment_id="e1",index="0",process_pid="other"} 30"#))
        // The tree's totals are the processes' sums: not on the page.
        #expect(!lines.contains { $0.contains("process_count") || $0.contains("process_tree") })
        #expect(lines.contains("system_memory_limit_bytes 8"))
    }
}
