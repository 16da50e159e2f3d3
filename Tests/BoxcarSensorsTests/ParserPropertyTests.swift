@testable import BoxcarSensors
import Foundation
import PropertyBased
import Testing

/// The /proc parsers against inputs no kernel writes: random bytes, and the captured fixture
/// files with bytes changed, cut short or repeated. They may refuse (throw, return nil or drop a
/// line) but never crash, and what they accept is consistent. Bounded: a few hundred inputs each.
@Suite struct ParserPropertyTests {
    static let fixtures = HostSensorTests.fixtures

    /// Every /proc file the host sensors parse, as captured, with its parser.
    static let files: [(path: String, parse: @Sendable ([UInt8]) -> Void)] = [
        ("proc-a/stat", { _ = try? CPUSensor.parseStat($0) }),
        ("proc-a/loadavg", { _ = try? CPUSensor.parseLoadAverage($0) }),
        ("proc-a/meminfo", { _ = MemorySensor.parse($0) }),
        ("proc-a/diskstats", { _ = DiskSensor.parse($0) }),
        ("proc-a/net/dev", { _ = NetworkSensor.parse($0) }),
        ("proc-a/pressure/cpu", { _ = try? PressureSensor.parse($0, resource: "cpu") }),
        ("proc-a/vmstat", { _ = VMStatSensor.parse($0) }),
        ("proc-a/net/snmp", { var snapshot = NetstatSensor.Snapshot(); NetstatSensor.parseSNMP($0, into: &snapshot) }),
        ("proc-a/net/sockstat", { var snapshot = NetstatSensor.Snapshot(); NetstatSensor.parseSockstat($0, into: &snapshot) }),
        ("proc-a/sys/fs/file-nr", { _ = try? FileHandleSensor.readings($0) }),
        ("proc-fs/self/mountinfo", { _ = FilesystemSensor.parse($0) }),
        ("proc-tree-a/101/stat", { _ = ProcessTreeSensor.parseStat($0) }),
        ("proc-tree-a/100/io", { _ = ProcessTreeSensor.parseIO($0) }),
        ("proc-cg/self/cgroup", { _ = CgroupSensor.memberships($0) }),
        ("proc-v1/self/cgroup", { _ = CgroupSensor.memberships($0) }),
        ("proc-v1/self/mountinfo", { _ = CgroupSensor.hierarchies($0) }),
        ("sys-cg-a/fs/cgroup/kubepods/pod42/trainer/cpu.stat", { _ = CgroupSensor.keyed($0) }),
    ]

    @Test func randomBytesNeverCrashAParser() async {
        await propertyCheck(count: 300, input: Gen.uint8().array(of: 0...600)) { bytes in
            for file in Self.files { file.parse(bytes) }
            _ = integers(bytes)
        }
    }

    func integers(_ bytes: [UInt8]) -> [UInt64] {
        var out: [UInt64] = []
        forEachInteger(bytes) { _, value in out.append(value) }
        return out
    }

    @Test func changedFixtureFilesNeverCrashAParser() async throws {
        let captured = try Self.files.map { try [UInt8](Data(contentsOf: URL(filePath: Self.fixtures + "/" + $0.path))) }
        // (which file, where, what byte, how much of the file is kept, how often it repeats)
        let mutation = Gen.int(in: 0...(Self.files.count - 1))
        await propertyCheck(
            count: 500, input: mutation, Gen.int(in: 0...4096).array(of: 0...8), Gen.uint8(), Gen.double(in: 0...1), Gen.int(in: 1...3)
        ) { which, positions, byte, kept, repeats in
            var bytes = captured[which]
            for position in positions where !bytes.isEmpty { bytes[position % bytes.count] = byte }
            bytes = Array(bytes.prefix(Int(Double(bytes.count) * kept)))
            bytes = Array([[UInt8]](repeating: bytes, count: repeats).joined())
            Self.files[which].parse(bytes)
        }
    }

    @Test func integersReadBackWhatWasWritten() async {
        let separators: [UInt8] = Array(" \t\n:,()=".utf8)
        await propertyCheck(count: 300, input: Gen.uint64(in: 0...999_999_999_999_999_999).array(of: 0...40), Gen.int(in: 0...(separators.count - 1))) { values, separator in
            var text: [UInt8] = [separators[separator]]
            for value in values { text += Array(String(value).utf8) + [separators[separator]] }
            #expect(integers(text) == values)
        }
    }

    @Test func decimalsReadAsDoubleReadsThem() async {
        // The hand-written decimal reader must round exactly as Double("…") does.
        await propertyCheck(count: 500, input: Gen.uint64(in: 0...99_999_999), Gen.uint64(in: 0...9_999_999), Gen.int(in: 0...7)) { whole, fraction, digits in
            let text = digits == 0 ? String(whole) : "\(whole)." + String(String(fraction).suffix(digits))
            #expect(Array(text.utf8)[...].number == Double(text), "\(text)")
        }
        #expect(Array("-3".utf8)[...].number == -3)
        #expect(Array("max".utf8)[...].number == nil)
        #expect(Array("18446744073709551616".utf8)[...].number == 18446744073709551616)
    }

    @Test func aProcessStatLineIsReadWhateverItsCommandName() async {
        // The command name sits in parentheses and may hold anything, parentheses and digits too.
        let name = Gen.uint8(in: 32...126).array(of: 0...30)
        await propertyCheck(count: 300, input: name, Gen.int32(in: 1...4_194_304), Gen.int32(in: 0...4_194_304)) { name, pid, parent in
            let line = Array("\(pid) (".utf8) + name + Array(") S \(parent) 1 1 0 -1 4194560 100 0 0 0 700 300 0 0 20 0 9 0 12345 100000000 256 0\n".utf8)
            let stat = ProcessTreeSensor.parseStat(line)
            #expect(stat?.pid == pid)
            #expect(stat?.parent == parent)
            #expect(stat?.cpuTicks == 1000)
            #expect(stat?.threads == 9)
            #expect(stat?.residentPages == 256)
        }
    }
}
