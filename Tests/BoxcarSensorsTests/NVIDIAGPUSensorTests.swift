#if canImport(Glibc)
import Glibc
#endif
import BoxcarSensors
import BoxcarTestSupport
import Foundation
import Synchronization
import Testing

/// The NVML sensor against the fake libnvidia-ml the package builds (libFakeNVML.so, beside the
/// test binary). The fake keeps its script in process-wide state, so these run one at a time.
@Suite(.serialized) struct NVIDIAGPUSensorTests {
    /// Loads the fake after writing `script` for it.
    func load(_ script: String, hiding: Set<String> = []) throws -> NVMLLibrary {
        let path = "/tmp/boxcar-fake-nvml-\(getpid()).txt"
        let file = fopen(path, "w")!
        fputs(script, file)
        fclose(file)
        setenv("FAKE_NVML_SCRIPT", path, 1)
        return try NVMLLibrary.load(path: fakeNVMLLibrary, hiding: hiding)
    }

    func value(_ readings: [Reading], _ key: String) -> Double? {
        readings.first { $0.seriesKey == key }?.value
    }

    @Test func noLibraryIsReportedNotFatal() {
        #expect(throws: NVMLError.self) { try NVMLLibrary.load(path: "/nonexistent/libnvidia-ml.so.1") }
        do {
            _ = try NVMLLibrary.load(path: "/nonexistent/libnvidia-ml.so.1")
        } catch {
            #expect("\(error)".contains("NVIDIA GPUs are not sampled"))
        }
    }

    @Test func initFailureSaysWhy() throws {
        #expect(throws: NVMLError.initFailed(code: 9, message: "Driver Not Loaded")) { try load("init 9\n") }
        #expect("\(NVMLError.initFailed(code: 18, message: "x"))".contains("differ in version"))
    }

    @Test func noGPUsGiveNoReadings() throws {
        let sensor = try NVIDIAGPUSensor(library: try load("gpus 0\n"))
        #expect(sensor.gpus.isEmpty)
        #expect(sensor.sample().isEmpty)
    }

    @Test func oneGPUReportsEveryMetricInItsUnit() throws {
        let sensor = try NVIDIAGPUSensor(library: try load("""
            gpus 1
            0 name NVIDIA-H200
            0 uuid GPU-1234
            0 utilization.gpu 87
            0 utilization.memory 40
            0 memory.total 150000000000
            0 memory.used 60000000000
            0 memory.free 90000000000
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
            0 process 99 2048
            0 nvlink 0 1 1 0 0 0 0
            0 gpm 1

            """))
        #expect(sensor.gpus == [.init(index: 0, name: "NVIDIA-H200", uuid: "GPU-1234")])
        #expect(sensor.unsupported.isEmpty)
        let readings = sensor.sample(processes: [4242])
        let gpu = #"hw.id="GPU-1234",hw.model="NVIDIA-H200",index="0""#
        let typed = #"hw.id="GPU-1234",hw.model="NVIDIA-H200",hw.type="gpu",index="0""#
        #expect(value(readings, "system/hw.gpu.utilization{\(gpu)}") == 0.87)
        #expect(value(readings, "system/hw.gpu.memory.activity{\(gpu)}") == 0.40)
        // nvmlDeviceGetMemoryInfo_v2: used without the 500 MB the driver reserves, as nvidia-smi.
        #expect(value(readings, "system/hw.gpu.memory.usage{\(gpu)}") == 59_500_000_000)
        #expect(value(readings, "system/hw.gpu.memory.limit{\(gpu)}") == 150_000_000_000)
        #expect(value(readings, "system/hw.gpu.memory.reserved{\(gpu)}") == 500_000_000)
        #expect(value(readings, "system/hw.temperature{\(gpu)}") == 61)
        #expect(value(readings, "system/hw.power{\(typed)}") == 512.345)  // 512,345 mW
        #expect(value(readings, "system/hw.power.limit{\(typed)}") == 700)
        #expect(value(readings, "system/hw.energy{\(typed)}") == 123_456.789)  // mJ → J
        #expect(value(readings, "system/hw.gpu.clock{clock=\"sm\",\(gpu)}") == 1_980_000_000)
        #expect(value(readings, "system/hw.gpu.clock{clock=\"memory\",\(gpu)}") == 3_201_000_000)
        #expect(value(readings, "system/hw.gpu.io.rate{\(gpu),network.io.direction=\"transmit\"}") == 2_097_152)  // 2048 KB/s
        #expect(value(readings, "system/hw.gpu.io.rate{\(gpu),network.io.direction=\"receive\"}") == 1_048_576)
        #expect(value(readings, "system/hw.fan.speed_ratio{\(gpu)}") == 0.35)
        // 5 = gpu_idle (0x1) | sw_power_cap (0x4)
        // Labels sorted by name: hw.id, hw.model, index, reason.
        let device = gpu
        #expect(value(readings, "system/hw.gpu.clocks_event{\(device),reason=\"gpu_idle\"}") == 1)
        #expect(value(readings, "system/hw.gpu.clocks_event{\(device),reason=\"sw_power_cap\"}") == 1)
        #expect(value(readings, "system/hw.gpu.clocks_event{\(device),reason=\"hw_slowdown\"}") == 0)
        #expect(value(readings, "system/hw.errors{error.type=\"corrected\",\(typed)}") == 2)
        #expect(value(readings, "system/hw.gpu.mig.mode{\(gpu)}") == 0)
        // Only the attached trainers' processes.
        #expect(value(readings, "system/hw.gpu.process.memory.usage{\(device),process.pid=\"4242\"}") == 1_073_741_824)
        #expect(!readings.contains { $0.seriesKey.contains("process.pid=\"99\"") })
    }

    /// PCIe throughput comes from GPM where the GPU has it, over the whole tick: no call of
    /// nvmlDeviceGetPcieThroughput, which samples 20 ms each time. A GPU without GPM, or whose GPM
    /// does not answer the PCIe metrics, gets that sample; one with neither lacks the metric.
    @Test func pcieThroughputFromGPMElseTheDriversSample() throws {
        let script = "gpus 1\n0 uuid GPU-1234\n0 name H200\n0 pcie.tx 2048\n0 pcie.rx 1024\n"
        let gpu = #"hw.id="GPU-1234",hw.model="H200",index="0""#
        let transmit = "system/hw.gpu.io.rate{\(gpu),network.io.direction=\"transmit\"}"
        let receive = "system/hw.gpu.io.rate{\(gpu),network.io.direction=\"receive\"}"
        let gpm = try NVIDIAGPUSensor(library: try load(script + "0 gpm 1\n", hiding: ["nvmlDeviceGetPcieThroughput"]))
        #expect(gpm.unsupported[0]?[.pcie] == nil)
        for _ in 0..<2 {
            let readings = gpm.sample()
            // 2 MiB/s from GPM, 2048 KB/s from the sample: the fake's device is the same.
            #expect(value(readings, transmit) == 2_097_152)
            #expect(value(readings, receive) == 1_048_576)
            #expect(readings.filter { $0.seriesKey == transmit }.count == 1)
        }
        let sampled = try NVIDIAGPUSensor(library: try load(script))
        #expect(sampled.unsupported[0]?[.gpm] != nil)
        #expect(value(sampled.sample(), transmit) == 2_097_152)
        // A GPM without the PCIe metrics: the sample from the tick after it said so.
        let partial = try NVIDIAGPUSensor(library: try load(script + "0 gpm 1\n0 gpm.pcie unsupported\n"))
        _ = partial.sample()
        let readings = partial.sample()
        #expect(value(readings, transmit) == 2_097_152)
        #expect(readings.filter { $0.seriesKey == transmit }.count == 1)
        let neither = try NVIDIAGPUSensor(library: try load(script, hiding: ["nvmlDeviceGetPcieThroughput"]))
        #expect(neither.unsupported[0]?[.pcie] != nil)
        #expect(!neither.sample().contains { $0.seriesKey.hasPrefix("system/hw.gpu.io.rate{") })
    }

    /// A driver without nvmlDeviceGetViolationStatus (deprecated) still gives the time power and
    /// thermal limits held the clocks down, from the field values that replace it.
    @Test func violationTimeFromFieldValuesWhereTheCallIsGone() throws {
        let sensor = try NVIDIAGPUSensor(library: try load("""
            gpus 2
            0 uuid GPU-1234
            0 name H200
            0 violation.status unsupported
            0 violation.power 500000000
            0 violation.thermal 0
            1 violation.status unsupported
            1 violation.power unsupported

            """))
        _ = sensor.sample()
        let readings = sensor.sample()
        let gpu = #"hw.id="GPU-1234",hw.model="H200",index="0""#
        // Half of each second of the driver's field clock.
        #expect(value(readings, "system/hw.gpu.violation_time.rate{\(gpu),reason=\"power\"}") == 0.5)
        #expect(value(readings, "system/hw.gpu.violation_time.rate{\(gpu),reason=\"thermal\"}") == 0)
        let counter = readings.first { $0.seriesKey == "system/hw.gpu.violation_time{\(gpu),reason=\"power\"}" }
        #expect(counter?.isCumulative == true)
        #expect((counter?.value ?? 0) >= 1)
        #expect(sensor.unsupported[0]?[.powerViolation] == nil)
        // GPU 1 has neither the call nor the power field: the metric is dropped for it alone.
        #expect(sensor.unsupported[1]?[.powerViolation] != nil)
        #expect(sensor.unsupported[1]?[.thermalViolation] == nil)
    }

    /// The counters a trainer's steps are marked with: each GPU's energy and violation times as
    /// they stand, from either source of the violation times, and nothing of a GPU without them.
    @Test func stepCountersAreEnergyAndViolationTimesAsTheyStand() throws {
        let sensor = try NVIDIAGPUSensor(library: try load("""
            gpus 3
            0 energy 5000000
            0 violation.power 250000000
            0 violation.thermal 0
            1 energy 7000
            1 violation.status unsupported
            1 violation.power 500000000
            2 energy unsupported
            2 violation.power unsupported
            2 violation.thermal unsupported

            """))
        #expect(sensor.readsStepCounters)
        let (counters, later) = (sensor.stepCounters(), sensor.stepCounters())
        func counter(_ readings: [Reading], _ index: Int, _ name: String, _ reason: String? = nil) -> Double? {
            readings.first { reading in
                reading.seriesKey.hasPrefix("system/\(name){") && reading.seriesKey.contains("index=\"\(index)\"")
                    && (reason.map { reading.seriesKey.contains("reason=\"\($0)\"") } ?? true)
            }?.value
        }
        #expect(counter(counters, 0, "hw.energy") == 5000 && counter(counters, 1, "hw.energy") == 7)
        // The fake's violation counters move on by their scripted ns at each read (GPU 1's field
        // values at each call, for either field).
        let power0 = try #require(counter(counters, 0, "hw.gpu.violation_time", "power"))
        #expect(counter(later, 0, "hw.gpu.violation_time", "power") == power0 + 0.25)
        #expect(counter(later, 0, "hw.gpu.violation_time", "thermal") == 0)
        let power1 = try #require(counter(counters, 1, "hw.gpu.violation_time", "power"))  // field 74
        #expect(try #require(counter(later, 1, "hw.gpu.violation_time", "power")) > power1)
        #expect(!counters.contains { $0.seriesKey.contains("index=\"2\"") })
        #expect(counters.count == 6)  // two energies, four violation times: no rate, nothing else
    }

    /// What DCGM's users watch for a failing GPU or a slow node: the video engines, PCIe replays,
    /// remapped rows and retired pages, time held down by power and thermal limits, and each
    /// active NVLink's traffic and errors, with rates over the driver's own clock.
    @Test func reliabilityLinksAndVideoEngines() throws {
        let sensor = try NVIDIAGPUSensor(library: try load("""
            gpus 2
            0 uuid GPU-1234
            0 name H100
            0 encoder 20
            0 decoder 5
            0 pcie.replays 3
            0 remapped.corrected 4
            0 remapped.uncorrected 1
            0 remap.pending 1
            0 retired.sbe 2
            0 retired.dbe 1
            0 violation.power 250000000
            0 violation.thermal 0
            0 nvlink 0 1024 2048 1 0 5 0
            0 nvlink 3 10 20 0 0 0 0
            0 gpm 1
            0 gpm.sm 85
            0 gpm.occupancy 40
            0 gpm.tensor 62
            0 gpm.dram 33
            0 gpm.fp64 0
            0 gpm.fp32 12
            0 gpm.fp16 7
            1 remapped.corrected unsupported

            """))
        _ = sensor.sample()
        let readings = sensor.sample()
        let gpu = #"hw.id="GPU-1234",hw.model="H100",index="0""#
        #expect(value(readings, "system/hw.gpu.utilization{hw.gpu.task=\"encoder\",\(gpu)}") == 0.2)
        #expect(value(readings, "system/hw.gpu.utilization{hw.gpu.task=\"decoder\",\(gpu)}") == 0.05)
        #expect(value(readings, "system/hw.gpu.pcie.replays{\(gpu)}") == 3)
        #expect(value(readings, "system/hw.gpu.memory.remapped_rows{error.type=\"corrected\",\(gpu)}") == 4)
        #expect(value(readings, "system/hw.gpu.memory.remapped_rows{error.type=\"uncorrected\",\(gpu)}") == 1)
        #expect(value(readings, "system/hw.gpu.memory.remap_pending{\(gpu)}") == 1)
        #expect(value(readings, "system/hw.gpu.memory.remap_failed{\(gpu)}") == 0)
        #expect(value(readings, "system/hw.gpu.memory.retired_pages{cause=\"single_bit_ecc\",\(gpu)}") == 2)
        #expect(value(readings, "system/hw.gpu.memory.retired_pages{cause=\"double_bit_ecc\",\(gpu)}") == 1)
        // 0.25 s held down by power in each second of the driver's reference clock.
        #expect(value(readings, "system/hw.gpu.violation_time.rate{\(gpu),reason=\"power\"}") == 0.25)
        #expect(value(readings, "system/hw.gpu.violation_time.rate{\(gpu),reason=\"thermal\"}") == 0)
        // The fake's clock: the violation counter has been read three times (the probe, two samples).
        #expect(value(readings, "system/hw.gpu.violation_time{\(gpu),reason=\"power\"}") == 0.75)
        // Link 0: 1,024 KiB sent and 2,048 received a second; link 3 too; no other link.
        #expect(value(readings, "system/hw.gpu.nvlink.io.rate{\(gpu),network.io.direction=\"transmit\",nvlink=\"0\"}") == 1_048_576)
        #expect(value(readings, "system/hw.gpu.nvlink.io.rate{\(gpu),network.io.direction=\"receive\",nvlink=\"0\"}") == 2_097_152)
        #expect(value(readings, "system/hw.gpu.nvlink.io.rate{\(gpu),network.io.direction=\"transmit\",nvlink=\"3\"}") == 10_240)
        #expect(Set(readings.filter { $0.name == "hw.gpu.nvlink.io.rate" }.compactMap { $0.labels.first { $0.name == "nvlink" }?.value }) == ["0", "3"])
        #expect(value(readings, "system/hw.gpu.nvlink.errors{error.type=\"replay\",\(gpu),nvlink=\"0\"}") == 1)
        #expect(value(readings, "system/hw.gpu.nvlink.errors{error.type=\"crc_flit\",\(gpu),nvlink=\"0\"}") == 5)
        // The counters are the exporter's and remote write's; their rates are stored.
        #expect(readings.filter { $0.name == "hw.gpu.nvlink.io" || $0.name == "hw.gpu.nvlink.errors" }.allSatisfy { $0.isCumulative })
        #expect(!readings.filter { $0.name.hasSuffix(".rate") }.contains { $0.isCumulative })
        // GPU 1 has no NVLink and no row remapper: those two are dropped for it alone.
        // GPM, between this sample and the last.
        #expect(value(readings, "system/hw.gpu.sm.activity{\(gpu)}") == 0.85)
        #expect(value(readings, "system/hw.gpu.sm.occupancy{\(gpu)}") == 0.4)
        #expect(value(readings, "system/hw.gpu.tensor.activity{\(gpu)}") == 0.62)
        #expect(value(readings, "system/hw.gpu.dram.activity{\(gpu)}") == 0.33)
        #expect(value(readings, "system/hw.gpu.pipe.activity{\(gpu),pipe=\"fp32\"}") == 0.12)
        #expect(value(readings, "system/hw.gpu.pipe.activity{\(gpu),pipe=\"fp16\"}") == 0.07)
        #expect(Set(sensor.unsupported[1]?.keys.map { $0 } ?? []) == [.nvlink, .remappedRows, .gpm])
        #expect(sensor.unsupported[0] == nil)
        #expect(!readings.contains { $0.name.hasPrefix("hw.gpu.nvlink") && $0.seriesKey.contains(#"index="1""#) })
    }

    @Test func withoutMemoryInfoV2UsedIncludesTheReserve() throws {
        let sensor = try NVIDIAGPUSensor(library: try load(
            "gpus 1\n0 memory.total 1000\n0 memory.used 300\n0 memory.reserved 100\n",
            hiding: ["nvmlDeviceGetMemoryInfo_v2"]))
        let readings = sensor.sample()
        #expect(readings.first { $0.name == "hw.gpu.memory.usage" }?.value == 300)
        #expect(!readings.contains { $0.name == "hw.gpu.memory.reserved" })
    }

    @Test func eachMIGInstanceReportsItsOwnMemory() throws {
        // GPU 0 in MIG mode with instances in slots 0 and 3 (of 7); GPU 1 not in MIG mode.
        let sensor = try NVIDIAGPUSensor(library: try load("""
            gpus 2
            0 mig 1
            0 mig.instance 0 4000000000 20000000000
            0 mig.instance 3 1000 10000000000
            1 mig 0

            """))
        let readings = sensor.sample()
        let instance0 = #"{hw.id="GPU-fake-0",hw.model="Fake GPU",index="0",mig="0",mig_uuid="MIG-fake-0-0"}"#
        let instance3 = #"{hw.id="GPU-fake-0",hw.model="Fake GPU",index="0",mig="3",mig_uuid="MIG-fake-0-3"}"#
        #expect(value(readings, "system/hw.gpu.mig.memory.usage" + instance0) == 4_000_000_000)
        #expect(value(readings, "system/hw.gpu.mig.memory.limit" + instance0) == 20_000_000_000)
        #expect(value(readings, "system/hw.gpu.mig.memory.usage" + instance3) == 1000)
        #expect(value(readings, "system/hw.gpu.mig.memory.limit" + instance3) == 10_000_000_000)
        #expect(readings.filter { $0.name == "hw.gpu.mig.memory.usage" }.count == 2)
        #expect(value(readings, #"system/hw.gpu.mig.mode{hw.id="GPU-fake-0",hw.model="Fake GPU",index="0"}"#) == 1)
        #expect(!readings.contains { $0.name.hasPrefix("hw.gpu.mig.memory") && $0.seriesKey.contains(#"index="1""#) })
        // A library without the MIG functions loses those series only.
        let older = try NVIDIAGPUSensor(library: try load("gpus 1\n0 mig 1\n0 mig.instance 0 1 2\n", hiding: ["nvmlDeviceGetMaxMigDeviceCount"]))
        #expect(older.unsupported[0]?[.migMemory] == "the library has no function for it")
        #expect(older.sample().contains { $0.name == "hw.gpu.mig.mode" })
    }

    @Test func theSlowPartHoldsTheCountersAndTheMIGModeAndAGPUOutOfMIGModeIsNotAskedForInstances() throws {
        let sensor = try NVIDIAGPUSensor(library: try load("gpus 2\n0 mig 1\n0 mig.instance 2 5 10\n1 mig 0\n0 pcie.replays 4\n"))
        let names = { (part: NVIDIAGPUSensor.Part) in Set(sensor.sample(part: part).map(\.name)) }
        let slow = names(.slow)
        #expect(slow.isSuperset(of: ["hw.energy", "hw.gpu.violation_time", "hw.gpu.pcie.replays", "hw.gpu.mig.mode"]))
        #expect(slow.isDisjoint(with: ["hw.gpu.utilization", "hw.gpu.mig.memory.usage"]))
        let fast = names(.fast)
        #expect(fast.isSuperset(of: ["hw.gpu.utilization", "hw.power", "hw.gpu.mig.memory.usage"]))
        #expect(fast.isDisjoint(with: slow))
        // The fake counts every call made of it: GPU 1, out of MIG mode, takes none for instances.
        let handle = try #require(dlopen(fakeNVMLLibrary, RTLD_NOW))
        defer { dlclose(handle) }
        let calls = unsafeBitCast(try #require(dlsym(handle, "fake_nvml_calls")), to: (@convention(c) () -> Int).self)
        let before = calls()
        let instances = sensor.sample(part: .only(.migMemory))
        #expect(calls() - before == 1 + 7 + 2, "GPU 0: the slot count, each of 7 slots, the filled one's UUID and memory")
        #expect(Set(instances.map(\.name)) == ["hw.gpu.mig.memory.usage", "hw.gpu.mig.memory.limit", "hw.gpu.mig.memory.reserved"])
        #expect(instances.allSatisfy { $0.labels.contains(.init("index", "0")) })
    }

    @Test func aPartWaitsForOneHungInTheDriverInsteadOfTouchingItsState() throws {
        // The fast part hangs in the driver (the fake holds its utilization call); the slow part,
        // called on another thread as the hang guard then does, must not run beside it.
        let sensor = try NVIDIAGPUSensor(library: try load("gpus 1\n"))
        let handle = try #require(dlopen(fakeNVMLLibrary, RTLD_NOW))
        defer { dlclose(handle) }
        let hold = unsafeBitCast(try #require(dlsym(handle, "fake_nvml_hold")), to: (@convention(c) (UnsafePointer<CChar>?) -> Void).self)
        let held = unsafeBitCast(try #require(dlsym(handle, "fake_nvml_held")), to: (@convention(c) () -> Int32).self)
        let finished = Mutex<[String]>([])
        hold("nvmlDeviceGetUtilizationRates")
        defer { hold(nil) }
        Thread { _ = sensor.sample(part: .fast); finished.withLock { $0.append("fast") } }.start()
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while held() == 0 && clock.now < deadline { usleep(1000) }
        #expect(held() == 1, "the fast part waits in the driver")
        Thread { _ = sensor.sample(part: .slow); finished.withLock { $0.append("slow") } }.start()
        // A slow part that ran beside the hung one would end while it still waits: it has a second.
        let grace = clock.now + .seconds(1)
        while finished.withLock({ $0.isEmpty }) && clock.now < grace { usleep(1000) }
        let whileHung = finished.withLock { $0 }
        hold(nil)
        #expect(whileHung.isEmpty, "nothing ends while the fast part is in the driver")
        while finished.withLock({ $0.count < 2 }) && clock.now < deadline { usleep(1000) }
        #expect(Set(finished.withLock { $0 }) == ["fast", "slow"])
    }

    @Test func eightGPUsAreEachLabelled() throws {
        var script = "gpus 8\n"
        for index in 0..<8 { script += "\(index) utilization.gpu \(index * 10)\n\(index) uuid GPU-\(index)\n" }
        let sensor = try NVIDIAGPUSensor(library: try load(script))
        #expect(sensor.gpus.map(\.uuid) == (0..<8).map { "GPU-\($0)" })
        let utilization = sensor.sample().filter { $0.name == "hw.gpu.utilization" && !$0.labels.contains { $0.name == "hw.gpu.task" } }
        #expect(utilization.count == 8)
        for reading in utilization {
            let index = Int(reading.labels.first { $0.name == "index" }!.value)!
            #expect(reading.value == Double(index * 10) / 100)
        }
    }

    @Test func unsupportedAndMissingFunctionsDropOnlyThatMetricOfThatGPU() throws {
        let library = try load("""
            gpus 2
            0 fan unsupported
            1 temperature 50
            1 fan 20

            """, hiding: ["nvmlDeviceGetTotalEnergyConsumption"])
        #expect(library.missingSymbols == ["nvmlDeviceGetTotalEnergyConsumption"])
        let sensor = try NVIDIAGPUSensor(library: library)
        #expect(sensor.unsupported[0]?[.fan] == "not supported by this GPU")
        #expect(sensor.unsupported[0]?[.energy] == "the library has no function for it")
        #expect(sensor.unsupported[1]?[.fan] == nil)
        let readings = sensor.sample()
        #expect(readings.filter { $0.name == "hw.fan.speed_ratio" }.map(\.value) == [0.2])
        #expect(!readings.contains { $0.name == "hw.energy" })
        #expect(readings.filter { $0.name == "hw.temperature" }.count == 2)
    }

    @Test func olderDriversAreReadThroughTheOlderNames() throws {
        // A driver before R535 has nvmlDeviceGetCurrentClocksThrottleReasons only.
        let library = try load("gpus 1\n0 clocks_event_reasons 8\n", hiding: ["nvmlDeviceGetCurrentClocksEventReasons"])
        #expect(library.missingSymbols.isEmpty)
        let readings = try NVIDIAGPUSensor(library: library).sample()
        #expect(readings.first { $0.seriesKey.contains(#"reason="hw_slowdown""#) }?.value == 1)
    }

    @Test func xidErrorsAreDeliveredOnce() throws {
        let sensor = try NVIDIAGPUSensor(library: try load("gpus 2\nxid 1 79\n"))
        let first = sensor.xidErrors()
        #expect(first.map(\.gpu) == [1])
        #expect(first.map(\.xid) == [79])
        #expect(sensor.xidErrors().isEmpty)
    }
}
