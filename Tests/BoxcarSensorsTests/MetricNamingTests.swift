#if canImport(Glibc)
import Glibc
#endif
import BoxcarModel
@testable import BoxcarSensors
import BoxcarTestSupport
import Foundation
import OTelSemanticConventions
import Testing

/// The agent's machine series against OpenTelemetry's semantic conventions 1.44: the metric table
/// (Tests/Fixtures/semconv-metrics.tsv, written by Scripts/semconv/extract-metrics.py from the
/// conventions' model at v1.44.0) and the attribute names of the swift-otel-semantic-conventions
/// package of the same version. And what the sensors read from the fixtures against
/// `MachineMetrics`, the table the README's is written from.
@Suite struct MetricNamingTests {
    static let fixtures = fixturesDirectory

    struct Convention {
        var instrument: String
        var unit: String
        var attributes: Set<String>
    }

    static let conventions: [String: Convention] = {
        let text = try! String(contentsOfFile: fixturesDirectory + "/semconv-metrics.tsv", encoding: .utf8)
        var out: [String: Convention] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            out[fields[0]] = Convention(
                instrument: fields[1], unit: fields[2], attributes: Set(fields[3].split(separator: ",").map(String.init)))
        }
        return out
    }()

    /// Every OpenTelemetry attribute the agent's series carry, as the package spells them.
    static let attributes: Set<String> = [
        OTelAttribute.cpu.logicalNumber, OTelAttribute.cpu.mode, OTelAttribute.process.state, OTelAttribute.process.pid,
        OTelAttribute.system.memory.state, OTelAttribute.system.memory.linux.slab.state,
        OTelAttribute.system.memory.linux.hugepages.state, OTelAttribute.system.paging.state,
        OTelAttribute.system.paging.fault.type, OTelAttribute.system.paging.direction, OTelAttribute.system.device,
        OTelAttribute.disk.io.direction, OTelAttribute.system.filesystem.mode, OTelAttribute.system.filesystem.mountpoint,
        OTelAttribute.system.filesystem.state, OTelAttribute.system.filesystem.type, OTelAttribute.network.interface.name,
        OTelAttribute.network.io.direction, OTelAttribute.network.connection.state, OTelAttribute.network.transport,
        OTelAttribute.hw.id, OTelAttribute.hw.model, OTelAttribute.hw.gpu.task, OTelAttribute.hw.sensorLocation, OTelAttribute.hw.vendor, OTelAttribute.hw.type, OTelAttribute.error.type,
    ]

    @Test func openTelemetrysNamesHaveItsUnitsKindsAndAttributes() throws {
        #expect(Self.conventions.count > 50)
        for metric in MachineMetrics.all {
            guard case .openTelemetry(let beyond) = metric.convention else { continue }
            let convention = try #require(Self.conventions[metric.name], "\(metric.name) is not an OpenTelemetry metric")
            #expect(metric.unit == convention.unit, "\(metric.name): \(metric.unit), OpenTelemetry says \(convention.unit)")
            #expect((metric.kind == .counter) == (convention.instrument == "counter"), "\(metric.name) is a \(convention.instrument)")
            for label in metric.labels where !beyond.contains(label) {
                #expect(convention.attributes.contains(label), "\(metric.name) has \(label), which OpenTelemetry does not list for it")
            }
            for label in beyond { #expect(!convention.attributes.contains(label), "\(metric.name): \(label) is OpenTelemetry's own") }
        }
    }

    @Test func theAgentsOwnNamesAreNotOpenTelemetrysWithAnotherMeaning() {
        for metric in MachineMetrics.all where metric.convention == .own {
            #expect(Self.conventions[metric.name] == nil, "\(metric.name) is OpenTelemetry's: use its meaning or another name")
            if metric.kind == .counter { #expect(!metric.name.hasSuffix(".rate")) }
        }
        // Each rate beside a counter is named for it.
        for metric in MachineMetrics.all where metric.name.hasSuffix(".rate") && metric.kind == .rate {
            let counter = MachineMetrics.byName[String(metric.name.dropLast(5))]
            #expect(counter?.kind == .counter, "\(metric.name) stands beside no counter")
        }
    }

    @Test func labelNamesWithADotAreOpenTelemetrysAttributes() {
        for metric in MachineMetrics.all {
            for label in metric.labels where label.contains(".") {
                #expect(Self.attributes.contains(label), "\(metric.name): \(label) is no OpenTelemetry attribute")
            }
        }
    }

    /// What the sensors read from the fixtures: every host sensor between proc-a and proc-b, the
    /// cgroups v1 and v2, a trainer's tree, InfiniBand, AMD and NVIDIA (every metric the fake has,
    /// MIG too).
    func everyReading() throws -> [Reading] {
        func between<S: CounterSensor>(_ make: (String) -> S) throws -> [Reading] {
            let a = make(Self.fixtures + "/proc-a")
            let b = make(Self.fixtures + "/proc-b")
            return b.readings(from: try a.snapshot(), to: try b.snapshot(), seconds: 2)
        }
        let sys = Self.fixtures + "/sys"
        var out = try between { CPUSensor(procRoot: $0, clockTicksPerSecond: 100) }
        out += try between { PressureSensor(procRoot: $0) }
        out += try between { VMStatSensor(procRoot: $0) }
        out += try between { NetstatSensor(procRoot: $0) }
        out += try between { NetworkSensor(procRoot: $0, sysRoot: sys) }
        out += try between { DiskSensor(procRoot: $0, sysRoot: sys, udev: nil) }
        out += try MemorySensor(procRoot: Self.fixtures + "/proc-b").sample(elapsed: nil)
        out += try FileHandleSensor(procRoot: Self.fixtures + "/proc-b").sample(elapsed: nil)
        out += try FilesystemSensor(procRoot: Self.fixtures + "/proc-fs") { _ in
            .init(totalBytes: 100, freeBytes: 50, availableBytes: 40, totalInodes: 10, freeInodes: 5)
        }.sample(elapsed: nil)
        let ibA = InfiniBandSensor(sysRoot: Self.fixtures + "/sys-ib-a")
        let ibB = InfiniBandSensor(sysRoot: Self.fixtures + "/sys-ib-b")
        out += ibB.readings(from: try ibA.snapshot(), to: try ibB.snapshot(), seconds: 2)
        out += try AMDGPUSensor(sysRoot: Self.fixtures + "/sys-amd").sample(elapsed: nil)
        for (proc, a, b) in [("/proc-cg", "/sys-cg-a", "/sys-cg-b"), ("/proc-v1", "/sys-v1-a", "/sys-v1-b")] {
            let first = CgroupSensor(procRoot: Self.fixtures + proc, sysRoot: Self.fixtures + a)
            _ = try first.sample(elapsed: nil)
            let second = CgroupSensor(procRoot: Self.fixtures + proc, sysRoot: Self.fixtures + b)
            second.previous = first.previous
            // As the sensor set labels a trainer's cgroup's readings.
            out += try second.sample(elapsed: .seconds(2)).map { Reading($0.name, $0.labels + [.init("process.pid", "100")], $0.value) }
        }
        let tree = ProcessTreeSensor(procRoot: Self.fixtures + "/proc-tree-a", clockTicksPerSecond: 100, pageSize: 4096, cpuCount: 4)
        _ = tree.sample(roots: [100], seconds: 0)
        let later = ProcessTreeSensor(procRoot: Self.fixtures + "/proc-tree-b", clockTicksPerSecond: 100, pageSize: 4096, cpuCount: 4)
        later.previous = tree.previous
        later.totals = tree.totals
        out += later.sample(roots: [100], seconds: 2)[100] ?? []
        let script = """
            gpus 2
            0 utilization.gpu 87
            0 utilization.memory 40
            0 memory.total 150000000000
            0 memory.used 60000000000
            0 memory.reserved 500000000
            0 temperature 61
            0 power 512345
            0 power.limit 700000
            0 energy 123456789
            0 clock.graphics 1980
            0 clock.sm 1980
            0 clock.memory 3201
            0 pcie.tx 2048
            0 pcie.rx 1024
            0 fan 35
            0 clocks_event_reasons 5
            0 ecc.corrected 2
            0 ecc.uncorrected 0
            0 mig 0
            0 process 4242 1073741824
            0 encoder 20
            0 decoder 5
            0 pcie.replays 3
            0 remapped.corrected 1
            0 remap.pending 1
            0 retired.sbe 2
            0 violation.power 250000000
            0 nvlink 0 1024 2048 1 0 5 0
            0 gpm 1
            0 gpm.sm 80
            1 mig 1
            1 mig.instance 0 1000 2000

            """
        // A copy of the fake of its own, its script beside it: the fake's script is process-wide
        // state, which NVIDIAGPUSensorTests' copy sets at the same time.
        let directory = TemporaryDirectory()
        let library = directory.file("libnvidia-ml.so.1")
        try FileManager.default.copyItem(atPath: fakeNVMLLibrary, toPath: library)
        try script.write(toFile: library + ".script", atomically: true, encoding: .utf8)
        let nvidia = try NVIDIAGPUSensor(library: try NVMLLibrary.load(path: library))
        _ = nvidia.sample(processes: [4242])
        out += nvidia.sample(processes: [4242])  // the second: rates of the NVLinks and violations
        return out
    }

    /// The keys the sensors write read back as written (the migrations rebuild keys with
    /// `SeriesKey.key`), and none of them is taken for an old name but the counters whose old
    /// names were their rates' (which no caller passes: they rename only keys written before).
    @Test func keysReadBackAndAreNotTakenForOldNames() throws {
        let ambiguous: Set<String> = [
            "system.cpu.context_switches", "system.process.created", "system.memory.oom_kills",
            "system.network.tcp.retransmits", "system.pressure.stall", "container.cpu.throttled",
        ]
        for reading in try everyReading() {
            let key = reading.seriesKey
            #expect(SeriesKey(parsing: key)?.key == key, "\(key)")
            if SeriesRenames.current(key) != nil {
                #expect(ambiguous.contains(reading.name), "\(key) would be renamed")
            }
        }
    }

    @Test func everySeriesTheSensorsWriteIsInTheTableWithItsLabels() throws {
        let readings = try everyReading()
        var seen: Set<String> = []
        for reading in readings {
            seen.insert(reading.name)
            let metric = try #require(MachineMetrics.byName[reading.name], "\(reading.name) is not in MachineMetrics")
            for label in reading.labels {
                #expect(metric.labels.contains(label.name), "\(reading.seriesKey): \(label.name) is not among \(metric.name)'s labels")
            }
        }
        // And the fixtures reach every metric of the table but the huge pages, which this
        // machine's meminfo has none of (memoryIsInBytes reads them from a node that has).
        let unread = Set(MachineMetrics.all.map(\.name)).subtracting(seen)
        #expect(unread == Set(MachineMetrics.all.map(\.name).filter { $0.hasPrefix("system.memory.linux.hugepages.") }), "\(unread.sorted())")
    }

    @Test func theReadmesTableIsThisTable() throws {
        let readme = try String(contentsOfFile: checkoutDirectory + "/README.md", encoding: .utf8)
        let start = try #require(readme.range(of: MachineMetrics.readmeStart + "\n"))
        let end = try #require(readme.range(of: MachineMetrics.readmeEnd))
        #expect(String(readme[start.upperBound..<end.lowerBound]) == MachineMetrics.markdownTable(),
                "README.md's machine metrics differ from MachineMetrics.swift: run Scripts/generate-settings-docs.sh")
    }
}
