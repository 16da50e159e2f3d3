import BoxcarSensors
import Testing

/// Fixture trees captured from a 2-CPU machine of this kind: proc-a as read, proc-b the same
/// 2 seconds later with counters advanced by hand (see each test for the deltas).
@Suite struct HostSensorTests {
    static let fixtures: String = {
        // #filePath is …/Tests/BoxcarSensorsTests/HostSensorTests.swift.
        var path = Substring(#filePath)
        for _ in 0..<2 { path = path[..<path.lastIndex(of: "/")!] }
        return path + "/Fixtures"
    }()

    func value(_ readings: [Reading], _ key: String) -> Double? {
        readings.first { $0.seriesKey == key }?.value
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

        let readings = try CPUSensor.readingsBetween(
            a: Self.fixtures + "/proc-a", b: Self.fixtures + "/proc-b", seconds: 2)
        #expect(value(readings, #"system/system.cpu.utilization{state="user"}"#) == 0.4)
        #expect(value(readings, #"system/system.cpu.utilization{state="system"}"#) == 0.05)
        #expect(value(readings, #"system/system.cpu.utilization{state="idle"}"#) == 0.5)
        #expect(value(readings, #"system/system.cpu.utilization{state="iowait"}"#) == 0.025)
        #expect(value(readings, #"system/system.cpu.utilization{state="softirq"}"#) == 0.0125)
        #expect(value(readings, #"system/system.cpu.utilization{state="steal"}"#) == 0.0125)
        #expect(value(readings, #"system/system.cpu.utilization{cpu="0",state="user"}"#) == 0.3)
        #expect(value(readings, #"system/system.cpu.utilization{cpu="0",state="iowait"}"#) == 0.05)
        #expect(value(readings, #"system/system.cpu.utilization{cpu="1",state="user"}"#) == 0.5)
        #expect(value(readings, #"system/system.cpu.utilization{cpu="1",state="idle"}"#) == 0.5)
        #expect(value(readings, "system/system.cpu.context_switches") == 2500)
    }

    @Test func memoryIsInBytes() throws {
        // proc-a/meminfo: MemTotal 24684096 kB, MemAvailable 23923680 kB, Cached 2100852 kB,
        // Buffers 19040 kB, Dirty 91900 kB, no swap.
        let readings = try MemorySensor(procRoot: Self.fixtures + "/proc-a").sample(elapsed: nil)
        #expect(value(readings, "system/system.memory.limit") == 25_276_514_304)
        #expect(value(readings, #"system/system.memory.usage{state="available"}"#) == 24_497_848_320)
        #expect(value(readings, #"system/system.memory.usage{state="used"}"#) == 778_665_984)
        #expect(value(readings, #"system/system.memory.usage{state="cached"}"#) == 2_151_272_448)
        #expect(value(readings, #"system/system.memory.usage{state="buffers"}"#) == 19_496_960)
        #expect(value(readings, #"system/system.memory.usage{state="dirty"}"#) == 94_105_600)
        #expect(value(readings, "system/system.paging.limit") == 0)
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
        let available = try #require(value(readings, #"system/system.memory.usage{state="available"}"#))
        #expect(available <= total)
        #expect(readings.allSatisfy { $0.value >= 0 })
    }

    @Test func seriesKeysSortAndEscapeTheirLabels() {
        let reading = Reading("hw.gpu.utilization", [.init("uuid", "GPU-1"), .init("index", "0"), .init("name", #"A "quoted" \ name"#)], 1)
        #expect(reading.seriesKey == #"system/hw.gpu.utilization{index="0",name="A \"quoted\" \\ name",uuid="GPU-1"}"#)
        #expect(Reading("system.memory.limit", [], 1).seriesKey == "system/system.memory.limit")
    }

    @Test func aMissingFileIsAnErrorNamingIt() {
        #expect { try MemorySensor(procRoot: "/nonexistent").sample(elapsed: nil) } throws: { error in
            "\(error)".contains("/nonexistent/meminfo")
        }
    }
}
