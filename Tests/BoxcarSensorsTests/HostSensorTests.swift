@testable import BoxcarSensors
import BoxcarTestSupport
import Foundation
import Testing

/// Fixture trees captured from a 2-CPU machine of this kind: proc-a as read, proc-b the same
/// 2 seconds later with counters advanced by hand (see each test for the deltas).
@Suite struct HostSensorTests {
    static let fixtures = fixturesDirectory

    func value(_ readings: [Reading], _ key: String) -> Double? {
        readings.first { $0.seriesKey == key }?.value
    }

    /// The readings of sensor `b` (proc-b) taken 2 seconds after sensor `a` (proc-a).
    func between<S: CounterSensor>(_ a: S, _ b: S) throws -> [Reading] {
        b.readings(from: try a.snapshot(), to: try b.snapshot(), seconds: 2)
    }

    @Test func pressureIsTheShareStalledAndStallSecondsPerSecond() throws {
        // proc-b: cpu some avg10 12.50 and total +500,000 µs; memory some +100,000, full +40,000.
        let readings = try between(
            PressureSensor(procRoot: Self.fixtures + "/proc-a"), PressureSensor(procRoot: Self.fixtures + "/proc-b"))
        #expect(value(readings, #"system/system.pressure.avg10{kind="some",resource="cpu"}"#) == 0.125)
        #expect(value(readings, #"system/system.pressure.stall.rate{kind="some",resource="cpu"}"#) == 0.25)
        #expect(value(readings, #"system/system.pressure.stall.rate{kind="some",resource="memory"}"#) == 0.05)
        #expect(value(readings, #"system/system.pressure.stall.rate{kind="full",resource="memory"}"#) == 0.02)
        #expect(value(readings, #"system/system.pressure.stall.rate{kind="full",resource="io"}"#) == 0)
        // The machine's CPU "full" line is the kernel's zero by definition: not a series.
        #expect(!readings.contains { $0.labels.contains(.init("resource", "cpu")) && $0.labels.contains(.init("kind", "full")) })
        // The first tick has the averages but no stall rate.
        let first = try PressureSensor(procRoot: Self.fixtures + "/proc-a").sample(elapsed: nil)
        #expect(first.count == 10)  // avg10 and the stalled time of each line but cpu full
    }

    /// 0.57 % is 57 / 10,000 rounded once, the double nearest 0.0057; 0.57 / 100 is a bit below it.
    @Test func pressureSharesAreTheNearestDoubles() throws {
        let directory = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.file("pressure"), withIntermediateDirectories: true)
        for resource in ["cpu", "memory", "io"] {
            try "some avg10=0.57 avg60=0.00 avg300=0.00 total=5\nfull avg10=33.33 avg60=0.00 avg300=0.00 total=5\n"
                .write(toFile: directory.file("pressure/" + resource), atomically: true, encoding: .utf8)
        }
        let first = try PressureSensor(procRoot: directory.path).sample(elapsed: nil)
        #expect(0.57 / 100 != 0.0057)
        #expect(value(first, #"system/system.pressure.avg10{kind="some",resource="io"}"#) == 0.0057)
        #expect(value(first, #"system/system.pressure.avg10{kind="full",resource="io"}"#) == 3333.0 / 10_000)
        #expect(!first.contains { $0.name == "system.pressure.stall.rate" })
    }

    /// Beside the rates, each counter as it stands (what the exporter exposes and remote write
    /// sends), read from proc-b alone; on the first tick too.
    @Test func countersAreReadAsTheyStand() throws {
        let b = Self.fixtures + "/proc-b"
        let sys = Self.fixtures + "/sys"
        let cpu = try CPUSensor(procRoot: b, clockTicksPerSecond: 100).sample(elapsed: nil)
        #expect(value(cpu, #"system/system.cpu.time{cpu.logical_number="0",cpu.mode="user"}"#) == 1424.12)
        #expect(value(cpu, #"system/system.cpu.time{cpu.logical_number="1",cpu.mode="iowait"}"#) == 17.36)
        // Per CPU only: the all-CPU line would count each second twice in a sum.
        #expect(!cpu.contains { $0.name == "system.cpu.time" && !$0.labels.contains { $0.name == "cpu.logical_number" } })
        #expect(value(cpu, "system/system.cpu.context_switches") == 3_001_152)
        let disk = try DiskSensor(procRoot: b, sysRoot: sys).sample(elapsed: nil)
        #expect(value(disk, #"system/system.disk.io{disk.io.direction="read",system.device="vda"}"#) == Double(18_130_426 * 512))
        #expect(value(disk, #"system/system.disk.operations{disk.io.direction="write",system.device="vda"}"#) == 119_512)
        #expect(value(disk, #"system/system.disk.operation_time{disk.io.direction="read",system.device="vda"}"#) == 405.257)
        #expect(value(disk, #"system/system.disk.io_time{system.device="vda"}"#) == 42.1)
        #expect(value(disk, #"system/system.disk.weighted_io_time{system.device="vda"}"#) == 497.014)
        let network = try NetworkSensor(procRoot: b, sysRoot: sys).sample(elapsed: nil)
        #expect(value(network, #"system/system.network.io{network.interface.name="eth0",network.io.direction="receive"}"#) == 57_491_494)
        #expect(value(network, #"system/system.network.packet.dropped{network.interface.name="eth0",network.io.direction="transmit"}"#) == 4)
        let pressure = try PressureSensor(procRoot: b).sample(elapsed: nil)
        #expect(value(pressure, #"system/system.pressure.stall{kind="some",resource="cpu"}"#) == 406.128074)
    }

    @Test func networkCountsPhysicalInterfacesPerSecond() throws {
        // eth0 (the one with a device link in sys/class/net): receive +2,000,000 bytes, +1,000
        // packets, +2 errors; transmit +400,000 bytes, +600 packets, +4 drops. lo changes too.
        let sys = Self.fixtures + "/sys"
        let readings = try between(
            NetworkSensor(procRoot: Self.fixtures + "/proc-a", sysRoot: sys),
            NetworkSensor(procRoot: Self.fixtures + "/proc-b", sysRoot: sys))
        #expect(value(readings, #"system/system.network.io.rate{network.interface.name="eth0",network.io.direction="receive"}"#) == 1_000_000)
        #expect(value(readings, #"system/system.network.packet.count.rate{network.interface.name="eth0",network.io.direction="receive"}"#) == 500)
        #expect(value(readings, #"system/system.network.errors.rate{network.interface.name="eth0",network.io.direction="receive"}"#) == 1)
        #expect(value(readings, #"system/system.network.io.rate{network.interface.name="eth0",network.io.direction="transmit"}"#) == 200_000)
        #expect(value(readings, #"system/system.network.packet.count.rate{network.interface.name="eth0",network.io.direction="transmit"}"#) == 300)
        #expect(value(readings, #"system/system.network.packet.dropped.rate{network.interface.name="eth0",network.io.direction="transmit"}"#) == 2)
        #expect(!readings.contains { $0.seriesKey.contains(#"name="lo""#) || $0.seriesKey.contains("ifb") })
        // The link: up, 25 Gb/s, jumbo frames.
        #expect(value(readings, #"system/system.network.interface.up{network.interface.name="eth0"}"#) == 1)
        #expect(value(readings, #"system/system.network.interface.speed{network.interface.name="eth0"}"#) == 3_125_000_000)
        #expect(value(readings, #"system/system.network.interface.mtu{network.interface.name="eth0"}"#) == 9000)
    }

    @Test func theLoopbackOnRequestAndALinkThatIsDown() throws {
        let sys = Self.fixtures + "/sys"
        let readings = try between(
            NetworkSensor(procRoot: Self.fixtures + "/proc-a", sysRoot: sys, includeLoopback: true),
            NetworkSensor(procRoot: Self.fixtures + "/proc-b", sysRoot: sys, includeLoopback: true))
        let interfaces = Set(readings.compactMap { $0.labels.first { $0.name == "network.interface.name" }?.value })
        #expect(interfaces == ["eth0", "lo"])
        // The loopback's operstate is "unknown": up all the same; it has no speed.
        #expect(value(readings, #"system/system.network.interface.up{network.interface.name="lo"}"#) == 1)
        #expect(value(readings, #"system/system.network.interface.speed{network.interface.name="lo"}"#) == nil)
        #expect(value(readings, #"system/system.network.interface.mtu{network.interface.name="lo"}"#) == 65536)
        // A link that went down: 0, and no speed (the kernel answers -1 or refuses the read).
        let directory = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.path + "/class/net/eth1/device", withIntermediateDirectories: true)
        try "down\n".write(toFile: directory.path + "/class/net/eth1/operstate", atomically: true, encoding: .utf8)
        try "-1\n".write(toFile: directory.path + "/class/net/eth1/speed", atomically: true, encoding: .utf8)
        let down = NetworkSensor(procRoot: Self.fixtures + "/proc-a", sysRoot: directory.path).link("eth1")
        #expect(down.map(\.seriesKey) == [#"system/system.network.interface.up{network.interface.name="eth1"}"#])
        #expect(down.first?.value == 0)
    }

    @Test func disksReportBytesOperationsBusyAndQueue() throws {
        // vda: +200 reads of 4,000 sectors, +100 reads merged, +200 ms reading, +50 writes of
        // 1,000 sectors, +500 ms busy, +3,000 weighted ms, +20 discards, over 2 s; 3 I/Os in
        // flight. zram0 has no changes; loop0 is skipped.
        let sys = Self.fixtures + "/sys"
        let readings = try between(
            DiskSensor(procRoot: Self.fixtures + "/proc-a", sysRoot: sys),
            DiskSensor(procRoot: Self.fixtures + "/proc-b", sysRoot: sys))
        #expect(value(readings, #"system/system.disk.io.rate{disk.io.direction="read",system.device="vda"}"#) == 1_024_000)
        #expect(value(readings, #"system/system.disk.operations.rate{disk.io.direction="read",system.device="vda"}"#) == 100)
        #expect(value(readings, #"system/system.disk.io.rate{disk.io.direction="write",system.device="vda"}"#) == 256_000)
        #expect(value(readings, #"system/system.disk.operations.rate{disk.io.direction="write",system.device="vda"}"#) == 25)
        #expect(value(readings, #"system/system.disk.busy{system.device="vda"}"#) == 0.25)
        #expect(value(readings, #"system/system.disk.queue_length{system.device="vda"}"#) == 1.5)
        #expect(value(readings, #"system/system.disk.merged.rate{disk.io.direction="read",system.device="vda"}"#) == 50)
        #expect(value(readings, #"system/system.disk.merged.rate{disk.io.direction="write",system.device="vda"}"#) == 0)
        #expect(value(readings, #"system/system.disk.operation_time.rate{disk.io.direction="read",system.device="vda"}"#) == 0.1)
        #expect(value(readings, #"system/system.disk.discards.rate{system.device="vda"}"#) == 10)
        #expect(value(readings, #"system/system.disk.pending_operations{system.device="vda"}"#) == 3)
        #expect(value(readings, #"system/system.disk.merged{disk.io.direction="read",system.device="vda"}"#) == 24_399)
        #expect(value(readings, #"system/system.disk.discards{system.device="vda"}"#) == 26_392)
        #expect(!readings.contains { $0.seriesKey.contains("loop") })
    }

    @Test func aProcessTreeIsSummedUnderItsRoot() throws {
        // proc-tree: 100 (python3 train.py) ← 101 (pt_data (worker)) ← 102 (sh); 200 is unrelated.
        // From a to b: cpu ticks +150 (100) and +50 (101); 100 read +2,000,000 and wrote
        // +400,000 bytes. 100 ticks a second, 4 CPUs, 4 KiB pages, 2 seconds.
        let sensor = ProcessTreeSensor(procRoot: Self.fixtures + "/proc-tree-a", clockTicksPerSecond: 100, pageSize: 4096, cpuCount: 4)
        let first = sensor.sample(roots: [100], seconds: 0)[100] ?? []
        #expect(value(first, #"system/process.count{process.pid="100"}"#) == 3)
        #expect(!first.contains { $0.name == "process.cpu.utilization" })
        let later = ProcessTreeSensor(procRoot: Self.fixtures + "/proc-tree-b", clockTicksPerSecond: 100, pageSize: 4096, cpuCount: 4)
        later.previous = sensor.previous
        later.totals = sensor.totals
        let readings = later.sample(roots: [100], seconds: 2)[100] ?? []
        #expect(value(readings, #"system/process.cpu.utilization{process.pid="100"}"#) == 0.25)  // 200 ticks = 2 s of CPU over 2 s × 4 CPUs
        #expect(value(readings, #"system/process.memory.usage{process.pid="100"}"#) == 6_553_600)  // 1,600 pages
        #expect(value(readings, #"system/process.thread.count{process.pid="100"}"#) == 14)
        #expect(value(readings, #"system/process.unix.file_descriptor.count{process.pid="100"}"#) == 8)
        #expect(value(readings, #"system/process.disk.io.rate{disk.io.direction="read",process.pid="100"}"#) == 1_000_000)
        #expect(value(readings, #"system/process.disk.io.rate{disk.io.direction="write",process.pid="100"}"#) == 200_000)
        #expect(value(readings, #"system/process.count{process.pid="100"}"#) == 3)
        // The counters rise by what the tree did: 200 ticks, 2,000,000 bytes read.
        let cpuBefore = try #require(value(first, #"system/process.cpu.time{process.pid="100"}"#))
        #expect(value(readings, #"system/process.cpu.time{process.pid="100"}"#) == cpuBefore + 2)
        let readBefore = try #require(value(first, #"system/process.disk.io{disk.io.direction="read",process.pid="100"}"#))
        #expect(value(readings, #"system/process.disk.io{disk.io.direction="read",process.pid="100"}"#) == readBefore + 2_000_000)
        // Each process on its own, for the exporter's page.
        let processes = try #require(later.lastProcesses[100])
        #expect(processes.map(\.pid) == [100, 101, 102])
        #expect(processes[0].cpuUtilization == 0.1875)  // 150 ticks over 2 s × 4 CPUs
        #expect(processes[1].cpuUtilization == 0.0625)
        #expect(ProcessTreeSensor.parseStat(Array("101 (pt_data (worker)) S 100 0 0 0 0 0 0 0 0 0 2000 300 0 0 0 0 3 0 12345 100000000 500".utf8))?.parent == 100)
    }

    /// A /proc of proc-tree-a's processes that a test may change between ticks.
    func copyOfTreeA() throws -> TemporaryDirectory {
        let proc = TemporaryDirectory()
        for pid in ["100", "101", "102", "200"] {
            try FileManager.default.copyItem(atPath: Self.fixtures + "/proc-tree-a/" + pid, toPath: proc.file(pid))
        }
        return proc
    }

    @Test func eachProcesssDescriptorsAreCountedEveryFewTreeReadsItsStatAndIOEveryOne() throws {
        // Sizing fd/ costs the kernel as much as reading stat: every detailEvery-th time, the
        // count between standing. Its I/O is read every time (a process that ends takes what it
        // did since its last read with it).
        let proc = try copyOfTreeA()
        let sensor = ProcessTreeSensor(procRoot: proc.path, clockTicksPerSecond: 100, pageSize: 4096, cpuCount: 4)
        let key = #"{disk.io.direction="read",process.pid="100"}"#
        let descriptors = #"system/process.unix.file_descriptor.count{process.pid="100"}"#
        let first = sensor.sample(roots: [100], seconds: 0)[100] ?? []
        let readBefore = try #require(value(first, "system/process.disk.io" + key))
        let descriptorsBefore = try #require(value(first, descriptors))
        // 3,000,000 bytes more read, a descriptor more, and a second of CPU.
        try "rchar: 1\nwchar: 1\nsyscr: 1\nsyscw: 1\nread_bytes: 13000000\nwrite_bytes: 1000000\ncancelled_write_bytes: 0\n"
            .write(toFile: proc.file("100/io"), atomically: false, encoding: .utf8)
        try "".write(toFile: proc.file("100/fd/99"), atomically: false, encoding: .utf8)
        let stat = try String(contentsOfFile: proc.file("100/stat"), encoding: .utf8)
        let name = try #require(stat.range(of: ")", options: .backwards))
        var fields = stat[name.upperBound...].split(separator: " ").map(String.init)
        fields[11] = String(Int(fields[11])! + 100)  // utime, the 14th field
        try (stat[..<name.upperBound] + " " + fields.joined(separator: " "))
            .write(toFile: proc.file("100/stat"), atomically: false, encoding: .utf8)
        for read in 1..<ProcessTreeSensor.detailEvery {
            let readings = sensor.sample(roots: [100], seconds: 1)[100] ?? []
            #expect(value(readings, descriptors) == descriptorsBefore, "read \(read)")
            // The stat and io are read every time: the CPU second and the bytes show at once.
            #expect(value(readings, "system/process.disk.io" + key) == readBefore + 3_000_000)
            #expect(value(readings, "system/process.disk.io.rate" + key) == (read == 1 ? 3_000_000 : 0))
            #expect(value(readings, #"system/process.cpu.utilization{process.pid="100"}"#) == (read == 1 ? 0.25 : 0))
        }
        let detailed = sensor.sample(roots: [100], seconds: 1)[100] ?? []
        #expect(value(detailed, descriptors) == descriptorsBefore + 1)
    }

    @Test func theTreeFollowsProcessesThatStartAndEnd() throws {
        // One sensor over a /proc that changes between ticks: the parents it learned stay known,
        // a new grandchild joins the tree at once, an ended child leaves it with its children.
        let proc = try copyOfTreeA()
        let files = FileManager.default
        let sensor = ProcessTreeSensor(procRoot: proc.path, clockTicksPerSecond: 100, pageSize: 4096, cpuCount: 4)
        func count() -> Double? { value(sensor.sample(roots: [100], seconds: 1)[100] ?? [], #"system/process.count{process.pid="100"}"#) }
        #expect(count() == 3)
        try files.createDirectory(atPath: proc.file("103"), withIntermediateDirectories: false)
        try "103 (python3 -c) R 102 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1 0 12345 100000000 10 0\n"
            .write(toFile: proc.file("103/stat"), atomically: true, encoding: .utf8)
        #expect(count() == 4)
        #expect(sensor.lastTree[100] == [100, 101, 102, 103])
        // 101 ends; the kernel gives its orphans to init (parent 1).
        try files.removeItem(atPath: proc.file("101"))
        try "102 (sh) S 1 0 0 0 0 0 0 0 0 0 10 5 0 0 0 0 1 0 12345 100000000 100 0\n"
            .write(toFile: proc.file("102/stat"), atomically: true, encoding: .utf8)
        try "103 (python3 -c) R 1 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1 0 12345 100000000 10 0\n"
            .write(toFile: proc.file("103/stat"), atomically: true, encoding: .utf8)
        #expect(count() == 1)
        #expect(sensor.lastTree[100] == [100])
    }

    @Test func onTheRealProcAChildStartedBetweenTicksJoinsTheTree() throws {
        // On this machine's /proc the sensor lists /proc only when the kernel has handed out a
        // PID since its last listing: a child forked between two ticks must still be seen.
        let shell = Process()
        shell.executableURL = URL(filePath: "/bin/sh")
        shell.arguments = ["-c", "read go; sleep 30 & read done"]
        let input = Pipe()
        shell.standardInput = input
        try shell.run()
        defer { kill(shell.processIdentifier, SIGKILL) }
        let root = shell.processIdentifier
        let sensor = ProcessTreeSensor()
        #expect(sensor.isOwnProcfs)
        func count() -> Double? { value(sensor.sample(roots: [root], seconds: 1)[root] ?? [], "system/process.count{process.pid=\"\(root)\"}") }
        #expect(count() == 1)
        #expect(count() == 1)
        input.fileHandleForWriting.write(Data("go\n".utf8))
        var seen = count()
        for _ in 0..<100 where seen != 2 {
            usleep(20_000)
            seen = count()
        }
        #expect(seen == 2)
        let child = try #require(sensor.lastTree[root]?.first { $0 != root })
        kill(child, SIGKILL)
        kill(root, SIGKILL)
        shell.waitUntilExit()
        // Gone once reaped (a zombie is still a process); Foundation reaps on a thread of its own.
        var left = count()
        for _ in 0..<100 where left != nil {
            usleep(20_000)
            left = count()
        }
        #expect(left == nil)
        #expect(sensor.lastTree[root] == nil)
    }

    @Test func aFileLargerThanOneReadIsReadWhole() throws {
        // Files "written out whole on the first read" still come whole when the first read fills
        // the buffer (/proc/stat of a machine with a thousand CPUs is over 64 KiB).
        let directory = TemporaryDirectory()
        let text = Array((0..<30_000).map { "line \($0)\n" }.joined().utf8)
        try Data(text).write(to: URL(filePath: directory.file("big")))
        for whole in [true, false] {
            let files = OpenFiles<String>(wholeInOneRead: whole)
            #expect(try files.read(directory.file("big")) == text)
            #expect(try files.read(directory.file("big")) == text)  // again, from offset 0
        }
        #expect(try OpenFiles<String>(wholeInOneRead: true).read("/proc/self/stat").last == UInt8(ascii: "\n"))
    }

    @Test func descriptorsAreCountedTheSameFromTheSizeOfFdAndByListingIt() throws {
        // On this kernel's /proc the size of /proc/PID/fd is the count; both ways must agree on a
        // child that opens nothing after stdin, stdout and stderr.
        let child = Process()
        child.executableURL = URL(filePath: "/bin/sleep")
        child.arguments = ["30"]
        child.standardInput = FileHandle.nullDevice
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        defer { child.terminate() }
        // Until the exec, the child still holds what Foundation opened to start it.
        let comm = "/proc/\(child.processIdentifier)/comm"
        for _ in 0..<200 where (try? String(contentsOfFile: comm, encoding: .utf8)) != "sleep\n" { usleep(10_000) }
        usleep(50_000)  // the exec renames the process a moment before it closes those
        let sensor = ProcessTreeSensor()
        // Linux 6.2 made the size of /proc/PID/fd the count (this machine's kind runs 6.18).
        var system = utsname()
        uname(&system)
        let release = withUnsafeBytes(of: system.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let version = release.split(separator: ".").prefix(2).compactMap { Int($0.prefix { $0.isNumber }) }
        #expect(sensor.sizeIsDescriptorCount == (version.count == 2 && (version[0], version[1]) >= (6, 2)), "kernel \(release)")
        let fromSize = sensor.descriptorCount(child.processIdentifier)
        sensor.sizeIsDescriptorCount = false
        #expect((fromSize ?? 0) >= 3)
        #expect(sensor.descriptorCount(child.processIdentifier) == fromSize)
        #expect(!ProcessTreeSensor.sizeCountsDescriptors(procRoot: Self.fixtures + "/proc-tree-a"))
    }

    @Test func cpuUtilizationIsEachStatesShareOfTheTicksBetweenReadings() throws {
        // Deltas from proc-a to proc-b, in clock ticks:
        //   cpu0: user +60, system +20, idle +100, iowait +10, softirq +5, steal +5 (200)
        //   cpu1: user +100, idle +100 (200); all CPUs: the sums (400). ctxt +5000.
        let sensor = CPUSensor(procRoot: Self.fixtures + "/proc-a")
        let first = try sensor.sample(elapsed: nil)
        #expect(!first.contains { $0.name == "system.cpu.utilization" })  // no rate on the first tick
        #expect(value(first, "system/system.cpu.load_average.1m") == 3.21)
        #expect(value(first, "system/system.cpu.load_average.15m") == 1.66)

        let readings = try between(CPUSensor(procRoot: Self.fixtures + "/proc-a"), CPUSensor(procRoot: Self.fixtures + "/proc-b"))
        #expect(value(readings, #"system/system.cpu.utilization{cpu.mode="user"}"#) == 0.4)
        #expect(value(readings, #"system/system.cpu.utilization{cpu.mode="system"}"#) == 0.05)
        #expect(value(readings, #"system/system.cpu.utilization{cpu.mode="idle"}"#) == 0.5)
        #expect(value(readings, #"system/system.cpu.utilization{cpu.mode="iowait"}"#) == 0.025)
        #expect(value(readings, #"system/system.cpu.utilization{cpu.mode="softirq"}"#) == 0.0125)
        #expect(value(readings, #"system/system.cpu.utilization{cpu.mode="steal"}"#) == 0.0125)
        #expect(value(readings, #"system/system.cpu.utilization{cpu.logical_number="0",cpu.mode="user"}"#) == 0.3)
        #expect(value(readings, #"system/system.cpu.utilization{cpu.logical_number="0",cpu.mode="iowait"}"#) == 0.05)
        #expect(value(readings, #"system/system.cpu.utilization{cpu.logical_number="1",cpu.mode="user"}"#) == 0.5)
        #expect(value(readings, #"system/system.cpu.utilization{cpu.logical_number="1",cpu.mode="idle"}"#) == 0.5)
        #expect(value(readings, "system/system.cpu.context_switches.rate") == 2500)
        // processes 43989 → 44089: 50 forks a second; proc-b has 5 running and 2 blocked on I/O.
        #expect(value(readings, "system/system.process.created.rate") == 50)
        #expect(value(readings, "system/system.process.created") == 44089)
        #expect(value(readings, #"system/system.process.count{process.state="running"}"#) == 5)
        #expect(value(readings, #"system/system.process.count{process.state="blocked"}"#) == 2)
    }

    @Test func memoryEventsArePerSecond() throws {
        // proc-a/vmstat as captured; proc-b 2 s later: pgmajfault +40, pswpin +200, pswpout +100,
        // oom_kill +1.
        let readings = try between(VMStatSensor(procRoot: Self.fixtures + "/proc-a"), VMStatSensor(procRoot: Self.fixtures + "/proc-b"))
        #expect(value(readings, #"system/system.paging.faults.rate{system.paging.fault.type="major"}"#) == 20)
        #expect(value(readings, #"system/system.paging.operations.rate{system.paging.direction="in"}"#) == 100)
        #expect(value(readings, #"system/system.paging.operations.rate{system.paging.direction="out"}"#) == 50)
        #expect(value(readings, "system/system.memory.oom_kills.rate") == 0.5)
        #expect(value(readings, "system/system.memory.oom_kills") == 1)
        #expect(value(readings, #"system/system.paging.faults{system.paging.fault.type="major"}"#) == 21535)
        // A kernel before 4.13 has no oom_kill line: no series of it, the others stay.
        let old = VMStatSensor.parse(Array("pgmajfault 7\npswpin 0\npswpout 0\n".utf8))
        #expect(old == [7, 0, 0, nil])
        #expect { try VMStatSensor(procRoot: "/nonexistent").sample(elapsed: nil) } throws: { _ in true }
    }

    @Test func tcpRetransmitsArePerSecondAndSocketsAsTheyStand() throws {
        // proc-a/net/snmp and sockstat as captured; proc-b 2 s later: RetransSegs +30, 12
        // connections established, 14 TCP sockets in use.
        let readings = try between(NetstatSensor(procRoot: Self.fixtures + "/proc-a"), NetstatSensor(procRoot: Self.fixtures + "/proc-b"))
        #expect(value(readings, "system/system.network.tcp.retransmits.rate") == 15)
        #expect(value(readings, "system/system.network.tcp.retransmits") == 52)
        #expect(value(readings, #"system/system.network.connection.count{network.connection.state="established",network.transport="tcp"}"#) == 12)
        #expect(value(readings, #"system/system.network.sockets{network.transport="tcp"}"#) == 14)
        #expect(value(readings, #"system/system.network.sockets{network.transport="udp"}"#) == 0)
        #expect(value(readings, "system/system.network.sockets") == 15)
        #expect { try NetstatSensor(procRoot: "/nonexistent").sample(elapsed: nil) } throws: { _ in true }
    }

    @Test func fileHandlesAreTheMachinesAllocatedAndItsLimit() throws {
        let readings = try FileHandleSensor(procRoot: Self.fixtures + "/proc-a").sample(elapsed: nil)
        #expect(value(readings, "system/system.file_handles.usage") == 474)
        #expect(value(readings, "system/system.file_handles.limit") == 2_466_097)
        #expect { try FileHandleSensor.readings(Array("474\n".utf8)) } throws: { "\($0)".contains("three numbers") }
    }

    @Test func memoryIsInBytesInStatesThatSumToTheLimit() throws {
        // proc-a/meminfo (kB): MemTotal 24684096, MemFree 21852196, MemAvailable 23923680,
        // Buffers 19040, Cached 2100852, SReclaimable 259876, SUnreclaim 32356, Shmem 8788,
        // Dirty 91900, Committed_AS 746676, no swap, no huge pages.
        let readings = try MemorySensor(procRoot: Self.fixtures + "/proc-a").sample(elapsed: nil)
        #expect(value(readings, "system/system.memory.limit") == 25_276_514_304)
        #expect(value(readings, #"system/system.memory.usage{system.memory.state="free"}"#) == 22_376_648_704)
        #expect(value(readings, #"system/system.memory.usage{system.memory.state="buffers"}"#) == 19_496_960)
        // Cached as `free` counts it: the page cache and the reclaimable slab.
        #expect(value(readings, #"system/system.memory.usage{system.memory.state="cached"}"#) == 2_417_385_472)  // (2,100,852 + 259,876) kB
        #expect(value(readings, #"system/system.memory.usage{system.memory.state="used"}"#) == 462_983_168)
        let states = readings.filter { $0.name == "system.memory.usage" }.map(\.value).reduce(0, +)
        #expect(states == 25_276_514_304)
        #expect(value(readings, "system/system.memory.linux.available") == 24_497_848_320)
        #expect(value(readings, "system/system.memory.linux.shared") == 8_998_912)
        #expect(value(readings, #"system/system.memory.linux.slab.usage{system.memory.linux.slab.state="reclaimable"}"#) == 266_113_024)
        #expect(value(readings, #"system/system.memory.linux.slab.usage{system.memory.linux.slab.state="unreclaimable"}"#) == 33_132_544)
        #expect(value(readings, "system/system.memory.linux.dirty") == 94_105_600)
        #expect(value(readings, "system/system.memory.linux.committed") == 764_596_224)
        #expect(value(readings, "system/system.paging.limit") == 0)
        #expect(value(readings, #"system/system.paging.usage{system.paging.state="free"}"#) == 0)
        #expect(!readings.contains { $0.name.hasPrefix("system.memory.linux.hugepages") })
    }

    @Test func hugePagesWhereSomeAreSetAside() throws {
        let meminfo = """
            MemTotal:       2097152 kB
            MemFree:         524288 kB
            MemAvailable:    600000 kB
            HugePages_Total:     512
            HugePages_Free:      100
            HugePages_Rsvd:       20
            HugePages_Surp:        3
            Hugepagesize:       2048 kB

            """
        let readings = try MemorySensor.readings(MemorySensor.parse(Array(meminfo.utf8)))
        #expect(value(readings, "system/system.memory.linux.hugepages.limit") == 512)
        #expect(value(readings, #"system/system.memory.linux.hugepages.usage{system.memory.linux.hugepages.state="used"}"#) == 412)
        #expect(value(readings, #"system/system.memory.linux.hugepages.usage{system.memory.linux.hugepages.state="free"}"#) == 100)
        #expect(value(readings, "system/system.memory.linux.hugepages.reserved") == 20)
        #expect(value(readings, "system/system.memory.linux.hugepages.surplus") == 3)
        #expect(value(readings, "system/system.memory.linux.hugepages.page_size") == 2_097_152)
        // Huge pages are part of used: the states still sum to the limit.
        #expect(readings.filter { $0.name == "system.memory.usage" }.map(\.value).reduce(0, +) == 2_147_483_648)
    }

    @Test func theRealMachineKeepsItsInvariants() throws {
        let cpu = CPUSensor()
        _ = try cpu.sample(elapsed: nil)
        var readings = try cpu.sample(elapsed: .milliseconds(10))
        readings += try MemorySensor().sample(elapsed: nil)
        for reading in readings where reading.name == "system.cpu.utilization" {
            #expect((0...1).contains(reading.value), "\(reading.seriesKey) = \(reading.value)")
        }
        let total = try #require(value(readings, "system/system.memory.limit"))
        let available = try #require(value(readings, #"system/system.memory.linux.available"#))
        #expect(available <= total)
        #expect(readings.allSatisfy { $0.value >= 0 })
    }

    @Test func seriesKeysSortAndEscapeTheirLabels() {
        let reading = Reading("hw.gpu.utilization", [.init("index", "0"), .init("hw.model", #"A "quoted" \ name"#), .init("hw.id", "GPU-1")], 1)
        #expect(reading.seriesKey == #"system/hw.gpu.utilization{hw.id="GPU-1",hw.model="A \"quoted\" \\ name",index="0"}"#)
        #expect(Reading("system.memory.limit", [], 1).seriesKey == "system/system.memory.limit")
        // A newline is escaped; characters of more than one byte pass whole.
        #expect(Reading("x", [.init("model", "Disque dur\n\u{e9}t\u{e9} 💾")], 1).seriesKey == #"system/x{model="Disque dur\nété 💾"}"#)
    }

    @Test func aMissingFileIsAnErrorNamingIt() {
        #expect { try MemorySensor(procRoot: "/nonexistent").sample(elapsed: nil) } throws: { error in
            "\(error)".contains("/nonexistent/meminfo")
        }
    }
}
