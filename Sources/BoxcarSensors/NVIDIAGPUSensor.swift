import CNVML
import Synchronization

/// NVIDIA GPUs through NVML: one set of series per GPU, labelled with its index, name and UUID.
///
/// Which metrics a GPU has is found once, at start: a function the library lacks, or one that
/// answers NOT_SUPPORTED for a device, drops that metric for that device for good (and is listed
/// in `unsupported`), instead of failing every tick.
public final class NVIDIAGPUSensor: @unchecked Sendable {
    public struct GPU: Sendable, Hashable {
        public var index: Int
        public var name: String
        public var uuid: String

        public init(index: Int, name: String, uuid: String) {
            self.index = index
            self.name = name
            self.uuid = uuid
        }
    }

    public enum Metric: String, CaseIterable, Sendable {
        // First: where it works, it gives PCIe throughput too (`pcie` then reads nothing).
        case gpm
        case utilization, memory, temperature, power, powerLimit, energy
        case clockGraphics, clockSM, clockMemory, pcie, fan
        case clocksEventReasons, eccCorrected, eccUncorrected, migMode, migMemory, processMemory
        case encoder, decoder, pcieReplays, remappedRows, retiredPages, powerViolation, thermalViolation, nvlink
    }

    public let library: NVMLLibrary
    public private(set) var gpus: [GPU] = []
    /// Per GPU index, the metrics it cannot give, with the reason.
    public private(set) var unsupported: [Int: [Metric: String]] = [:]
    private var devices: [NVMLLibrary.Device] = []
    private var supported: [Set<Metric>] = []
    /// Each GPU's labels, made once: they are on every reading of every tick.
    private var gpuLabels: [[Reading.Label]] = []
    private var eventSet: OpaquePointer?
    /// Each device's active NVLinks, found at its first read.
    private var activeLinks: [UnsafeMutableRawPointer: [UInt32]] = [:]
    /// Counters whose rate the sensor gives (NVLink data, violation time) as last read, by device
    /// and counter: the driver's own timestamp and the value.
    private var lastCounters: [CounterKey: (time: Double, value: Double)] = [:]
    /// The devices whose violation times come from field values (their driver has no
    /// nvmlDeviceGetViolationStatus).
    private var violationByField: Set<UnsafeMutableRawPointer> = []

    /// A device's counter: an NVML field id and its scope (the NVLink), or a violation policy.
    struct CounterKey: Hashable {
        var device: UnsafeMutableRawPointer
        var counter: UInt64
    }
    /// Each GPM device's two sample buffers: the last tick's and this one's (GPM gives its
    /// metrics between two samples).
    private var gpmSamples: [UnsafeMutableRawPointer: (previous: OpaquePointer, current: OpaquePointer, primed: Bool)] = [:]
    /// Whether each device's GPM answered its PCIe metrics, as its last metrics call said.
    private var gpmGivesPCIe: [UnsafeMutableRawPointer: Bool] = [:]
    /// The devices out of MIG mode at their last read of it: they have no instances to read (a
    /// device whose mode could not be read is asked, as before the mode was known).
    private var migOff: Set<UnsafeMutableRawPointer> = []

    /// The metrics that cost a tenth of a millisecond of CPU a read or more where the rest cost a
    /// few microseconds (an H200, driver 580: the energy counter 3 ms, each violation counter
    /// 0.7 ms, the PCIe replays and the MIG mode 0.15 ms; `Scripts/gpu-check/costs.py`), and
    /// that a plot loses little by at 10 s (counters, and a mode that changes with a GPU reset). A
    /// sampler reads them (`Part.slow`) at every `slowEvery`-th tick, the first included (the
    /// agent makes that every 10 s), and the rest (`Part.fast`) at every one; their rates span the
    /// time between two reads.
    public static let slowMetrics: Set<Metric> = [.energy, .powerViolation, .thermalViolation, .pcieReplays, .migMode]
    public let slowEvery: Int

    /// Which of the metrics a sample reads: `only` one, for the bench's cost of each.
    public enum Part: Sendable, Equatable {
        case all, fast, slow, only(Metric)

        func includes(_ metric: Metric) -> Bool {
            switch self {
            case .all: true
            case .fast: !NVIDIAGPUSensor.slowMetrics.contains(metric)
            case .slow: NVIDIAGPUSensor.slowMetrics.contains(metric)
            case .only(let one): one == metric
            }
        }
    }

    public init(library: NVMLLibrary, slowEvery: Int = 1) throws {
        self.library = library
        self.slowEvery = max(1, slowEvery)
        guard let deviceCount = library.deviceCount, let handleByIndex = library.handleByIndex else {
            throw NVMLError.symbolMissing(path: library.path, name: "nvmlDeviceGetCount_v2")
        }
        var count: UInt32 = 0
        let rc = deviceCount(&count)
        guard rc == NVMLReturn.success else {
            throw NVMLError.initFailed(code: rc, message: library.describe(rc))
        }
        for index in 0..<count {
            var device: NVMLLibrary.Device?
            guard handleByIndex(index, &device) == NVMLReturn.success, let device else { continue }
            let gpu = GPU(
                index: Int(index),
                name: Self.string(device, library.name) ?? "unknown",
                uuid: Self.string(device, library.uuid) ?? "unknown")
            gpus.append(gpu)
            // OpenTelemetry's: the UUID identifies the GPU (`hw.id`), the name is its model; the
            // index (nvidia-smi's) is the agent's own label.
            gpuLabels.append([.init("hw.id", gpu.uuid), .init("hw.model", gpu.name), .init("index", String(gpu.index))])
            devices.append(device)
            var works = Set<Metric>()
            var reasons: [Metric: String] = [:]
            for metric in Metric.allCases {
                switch probe(metric, device) {
                case .success: works.insert(metric)
                case .failure(let failure): reasons[metric] = failure.reason
                }
            }
            supported.append(works)
            if !reasons.isEmpty { unsupported[gpu.index] = reasons }
        }
        registerXIDEvents()
    }

    /// Held by a sample: the fast and slow parts are two guarded calls, and where one hangs in the
    /// driver the guard makes the next on another thread, which must wait rather than touch what
    /// the hung one will when it returns (counters' last reads, GPM's samples, the MIG modes).
    private let sampling = Mutex(())

    /// Every supported metric of every GPU, or the fast or slow part of them. `processes` limits
    /// per-process GPU memory to those PIDs (the attached trainers' trees); empty: none.
    public func sample(processes: Set<Int32> = [], part: Part = .all) -> [Reading] {
        sampling.withLock { _ in
            var readings: [Reading] = []
            for position in gpus.indices {
                let device = devices[position]
                let labels = gpuLabels[position]
                for metric in supported[position] where part.includes(metric) {
                    // No instances on a GPU out of MIG mode, as read at start and then with the slow part.
                    if metric == .migMemory && migOff.contains(UnsafeMutableRawPointer(device)) { continue }
                    read(metric, device, labels: labels, processes: processes, into: &readings)
                }
            }
            return readings
        }
    }

    /// Whether some GPU gives a counter a trainer's steps are marked with (energy, violation time).
    public var readsStepCounters: Bool {
        supported.contains { !$0.isDisjoint(with: [.energy, .powerViolation, .thermalViolation]) }
    }

    /// Each GPU's energy counter (`hw.energy`, J since the driver loaded) and the time power and
    /// thermal limits held its clocks (`hw.gpu.violation_time`, s) as they stand, for the mark of a
    /// trainer's step: their differences between two steps' marks are what the step used. Touches
    /// no state of the sensor's (no rate, no choice of source remembered): safe beside `sample`.
    public func stepCounters() -> [Reading] {
        var readings: [Reading] = []
        for position in gpus.indices {
            let (device, labels) = (devices[position], gpuLabels[position])
            if supported[position].contains(.energy) {
                _ = read(.energy, device, labels: labels, processes: [], into: &readings)
            }
            for power in [true, false] where supported[position].contains(power ? .powerViolation : .thermalViolation) {
                if let total = violationTotal(power, device, labels: labels) { readings.append(total) }
            }
        }
        return readings
    }

    /// A violation counter as it stands: nvmlDeviceGetViolationStatus, else the field value the
    /// drivers that retired it keep (as `violation` reads them).
    private func violationTotal(_ power: Bool, _ device: NVMLLibrary.Device, labels: [Reading.Label]) -> Reading? {
        let reason = labels + [Reading.Label("reason", power ? "power" : "thermal")]
        if let status = library.violationStatus {
            var value = boxcar_nvmlViolationTime_t()
            let rc = status(device, power ? 0 : 1, &value)
            if rc == NVMLReturn.success {
                return Reading.cumulative("hw.gpu.violation_time", reason, Double(value.violationTime) / 1e9)
            }
            // Another failure is this read's, not the call's absence: no mark, rather than one of
            // the other counter.
            guard rc == NVMLReturn.notSupported || rc == NVMLReturn.functionNotFound || rc == NVMLReturn.deprecated else { return nil }
        }
        guard let fields = library.fieldValues else { return nil }
        var value = boxcar_nvmlFieldValue_t()
        value.fieldId = power ? 74 : 75
        guard fields(device, 1, &value) == NVMLReturn.success, value.nvmlReturn == NVMLReturn.success else { return nil }
        return Reading.cumulative("hw.gpu.violation_time", reason, Self.number(value) / 1e9)
    }

    /// XID errors reported since the last call: (GPU index, XID code). Never blocks.
    public func xidErrors() -> [(gpu: Int, xid: UInt64)] {
        guard let eventSet, let wait = library.eventSetWait else { return [] }
        var out: [(Int, UInt64)] = []
        var data = boxcar_nvmlEventData_t()
        while wait(eventSet, &data, 0) == NVMLReturn.success {
            let index = devices.firstIndex { UnsafeMutableRawPointer($0) == data.device }.map { gpus[$0].index } ?? -1
            out.append((index, data.eventData))
            data = boxcar_nvmlEventData_t()
        }
        return out
    }

    // MARK: Reading

    struct ProbeFailure: Error {
        var reason: String
    }

    private func probe(_ metric: Metric, _ device: NVMLLibrary.Device) -> Result<Void, ProbeFailure> {
        var scratch: [Reading] = []
        let rc = call(metric, device, labels: [], processes: [], into: &scratch)
        switch rc {
        case nil: return .failure(ProbeFailure(reason: "the library has no function for it"))
        case NVMLReturn.notSupported?: return .failure(ProbeFailure(reason: "not supported by this GPU"))
        // Any other answer (success, or a passing error such as NO_PERMISSION or GPU busy) keeps
        // the metric: it is read each tick and simply missing from the ticks it fails.
        case _?: return .success(())
        }
    }

    private func read(
        _ metric: Metric, _ device: NVMLLibrary.Device, labels: [Reading.Label], processes: Set<Int32>,
        into readings: inout [Reading]
    ) {
        _ = call(metric, device, labels: labels, processes: processes, into: &readings)
    }

    /// Calls NVML for one metric and appends its readings; returns NVML's code, nil when the
    /// function is missing.
    private func call(
        _ metric: Metric, _ device: NVMLLibrary.Device, labels: [Reading.Label], processes: Set<Int32>,
        into readings: inout [Reading]
    ) -> Int32? {
        let nvml = library
        // Placed in order: Reading would otherwise sort a new array for each.
        func with(_ extra: Reading.Label) -> [Reading.Label] {
            var out = labels
            out.insert(extra, at: labels.firstIndex { $0.name > extra.name } ?? labels.endIndex)
            return out
        }
        func scalar(_ function: ((NVMLLibrary.Device, UnsafeMutablePointer<UInt32>) -> Int32)?, _ emit: (Double) -> Void) -> Int32? {
            guard let function else { return nil }
            var value: UInt32 = 0
            let rc = function(device, &value)
            if rc == NVMLReturn.success { emit(Double(value)) }
            return rc
        }
        switch metric {
        case .utilization:
            guard let function = nvml.utilization else { return nil }
            var value = boxcar_nvmlUtilization_t()
            let rc = function(device, &value)
            if rc == NVMLReturn.success {
                readings.append(Reading("hw.gpu.utilization", labels, Double(value.gpu) / 100))
                // Not OpenTelemetry's hw.gpu.memory.utilization (the share of the memory in use).
                readings.append(Reading("hw.gpu.memory.activity", labels, Double(value.memory) / 100))
            }
            return rc
        case .memory:
            return memory(of: device, labels: labels, as: Self.gpuMemory, into: &readings)
        case .temperature:
            guard let function = nvml.temperature else { return nil }
            var value: UInt32 = 0
            let rc = function(device, 0, &value)  // NVML_TEMPERATURE_GPU
            if rc == NVMLReturn.success { readings.append(Reading("hw.temperature", labels, Double(value))) }
            return rc
        case .power:
            return scalar(nvml.powerUsage) { readings.append(Reading("hw.power", with(Self.gpuType), $0 / 1000)) }  // mW → W
        case .powerLimit:
            return scalar(nvml.powerLimit) { readings.append(Reading("hw.power.limit", with(Self.gpuType), $0 / 1000)) }
        case .energy:
            guard let function = nvml.totalEnergy else { return nil }
            var value: UInt64 = 0
            let rc = function(device, &value)
            if rc == NVMLReturn.success { readings.append(Reading("hw.energy", with(Self.gpuType), Double(value) / 1000)) }  // mJ → J
            return rc
        case .clockGraphics, .clockSM, .clockMemory:
            guard let function = nvml.clockInfo else { return nil }
            let (type, label): (Int32, String) = metric == .clockGraphics ? (0, "graphics") : metric == .clockSM ? (1, "sm") : (2, "memory")
            var value: UInt32 = 0
            let rc = function(device, type, &value)
            if rc == NVMLReturn.success {
                readings.append(Reading("hw.gpu.clock", with(.init("clock", label)), Double(value) * 1_000_000))  // MHz → Hz
            }
            return rc
        case .pcie:
            // Over the whole tick from GPM where the GPU has it (Hopper on, `gpm`; a GPM that does
            // not answer its PCIe metrics falls back from the tick after it said so). Else
            // nvmlDeviceGetPcieThroughput's, which samples 20 ms a call: on an H200 (driver 580) it
            // took 21 ms and 0.9 ms of CPU each way. (The byte counters, field values 197 and 198,
            // are 32 bits there: they wrap at 4 GiB, a tenth of a second of Gen5 x16 traffic.)
            let key = UnsafeMutableRawPointer(device)
            if gpmSamples[key] != nil && gpmGivesPCIe[key] != false { return NVMLReturn.success }
            guard let function = nvml.pcieThroughput else { return nil }
            var last = NVMLReturn.success
            for (counter, direction) in [(Int32(0), "transmit"), (1, "receive")] {
                var value: UInt32 = 0
                last = function(device, counter, &value)
                guard last == NVMLReturn.success else { return last }
                readings.append(Reading("hw.gpu.io.rate", with(.init("network.io.direction", direction)), Double(value) * 1024))  // KB/s → B/s
            }
            return last
        case .fan:
            return scalar(nvml.fanSpeed) { readings.append(Reading("hw.fan.speed_ratio", labels, $0 / 100)) }
        case .clocksEventReasons:
            guard let function = nvml.clocksEventReasons else { return nil }
            var value: UInt64 = 0
            let rc = function(device, &value)
            if rc == NVMLReturn.success {
                for (bit, reason) in Self.clocksEventReasons {
                    readings.append(Reading("hw.gpu.clocks_event", with(.init("reason", reason)), value & bit != 0 ? 1 : 0))
                }
            }
            return rc
        case .eccCorrected, .eccUncorrected:
            guard let function = nvml.totalEccErrors else { return nil }
            let (type, label): (Int32, String) = metric == .eccCorrected ? (0, "corrected") : (1, "uncorrected")
            var value: UInt64 = 0
            let rc = function(device, type, 0, &value)  // NVML_VOLATILE_ECC
            if rc == NVMLReturn.success { readings.append(Reading("hw.errors", [.init("error.type", label)] + with(Self.gpuType), Double(value))) }
            return rc
        case .encoder, .decoder:
            guard let function = metric == .encoder ? nvml.encoderUtilization : nvml.decoderUtilization else { return nil }
            var value: UInt32 = 0
            var period: UInt32 = 0
            let rc = function(device, &value, &period)
            if rc == NVMLReturn.success {
                readings.append(Reading("hw.gpu.utilization", with(.init("hw.gpu.task", metric == .encoder ? "encoder" : "decoder")), Double(value) / 100))
            }
            return rc
        case .pcieReplays:
            return scalar(nvml.pcieReplayCounter) { readings.append(Reading("hw.gpu.pcie.replays", labels, $0)) }
        case .remappedRows:
            guard let function = nvml.remappedRows else { return nil }
            var corrected: UInt32 = 0, uncorrected: UInt32 = 0, pending: UInt32 = 0, failed: UInt32 = 0
            let rc = function(device, &corrected, &uncorrected, &pending, &failed)
            if rc == NVMLReturn.success {
                readings.append(Reading("hw.gpu.memory.remapped_rows", [.init("error.type", "corrected")] + labels, Double(corrected)))
                readings.append(Reading("hw.gpu.memory.remapped_rows", [.init("error.type", "uncorrected")] + labels, Double(uncorrected)))
                readings.append(Reading("hw.gpu.memory.remap_pending", labels, Double(pending)))
                readings.append(Reading("hw.gpu.memory.remap_failed", labels, Double(failed)))
            }
            return rc
        case .retiredPages:
            // Asked with room for none: the driver answers how many (INSUFFICIENT_SIZE when some).
            guard let function = nvml.retiredPages else { return nil }
            var last: Int32 = NVMLReturn.success
            for (cause, label) in [(Int32(0), "single_bit_ecc"), (1, "double_bit_ecc")] {
                var count: UInt32 = 0
                var address: UInt64 = 0
                last = function(device, cause, &count, &address)
                guard last == NVMLReturn.success || last == NVMLReturn.insufficientSize else { return last }
                readings.append(Reading("hw.gpu.memory.retired_pages", with(.init("cause", label)), Double(count)))
            }
            return NVMLReturn.success
        case .powerViolation, .thermalViolation:
            return violation(metric == .powerViolation, device, labels: labels, into: &readings)
        case .nvlink:
            return nvlink(device, labels: labels, into: &readings)
        case .gpm:
            return gpm(device, labels: labels, into: &readings)
        case .migMode:
            guard let function = nvml.migMode else { return nil }
            var current: UInt32 = 0
            var pending: UInt32 = 0
            let rc = function(device, &current, &pending)
            if rc == NVMLReturn.success {
                readings.append(Reading("hw.gpu.mig.mode", labels, Double(current)))
                if current == 1 { migOff.remove(UnsafeMutableRawPointer(device)) } else { migOff.insert(UnsafeMutableRawPointer(device)) }
            }
            return rc
        case .migMemory:
            // Each MIG instance's own memory: the GPU's totals cannot say which instance is full.
            guard let maximum = nvml.maxMigDeviceCount, let handle = nvml.migDeviceHandleByIndex else { return nil }
            var slots: UInt32 = 0
            let rc = maximum(device, &slots)
            guard rc == NVMLReturn.success else { return rc }
            for slot in 0..<slots {
                var instance: NVMLLibrary.Device?
                // NOT_FOUND: no instance in this slot.
                guard handle(device, slot, &instance) == NVMLReturn.success, let instance else { continue }
                let migLabels = labels + [.init("mig", String(slot)), .init("mig_uuid", Self.string(instance, nvml.uuid) ?? "unknown")]
                _ = memory(of: instance, labels: migLabels, as: Self.migMemory, into: &readings)
            }
            return rc
        case .processMemory:
            guard let function = nvml.computeProcesses else { return nil }
            var count: UInt32 = 64
            var infos = [boxcar_nvmlProcessInfo_t](repeating: boxcar_nvmlProcessInfo_t(), count: Int(count))
            var rc = infos.withUnsafeMutableBufferPointer { function(device, &count, $0.baseAddress) }
            if rc == NVMLReturn.insufficientSize {
                infos = [boxcar_nvmlProcessInfo_t](repeating: boxcar_nvmlProcessInfo_t(), count: Int(count))
                rc = infos.withUnsafeMutableBufferPointer { function(device, &count, $0.baseAddress) }
            }
            if rc == NVMLReturn.success {
                // NVML_VALUE_NOT_AVAILABLE (all ones): the driver could not say, e.g. without permission.
                for info in infos.prefix(Int(count))
                where processes.contains(Int32(bitPattern: info.pid)) && info.usedGpuMemory != UInt64.max {
                    readings.append(Reading(
                        "hw.gpu.process.memory.usage", with(.init("process.pid", String(info.pid))), Double(info.usedGpuMemory)))
                }
            }
            return rc
        }
    }

    /// A counter as it stands, and its rise per second since its last read by the driver's own
    /// clock (`time`, seconds); none the first time, nor when it went back (a driver reload).
    private func counter(
        _ name: String, rate: String, _ labels: [Reading.Label], key: CounterKey, value: Double, time: Double,
        into readings: inout [Reading]
    ) {
        let reading = Reading.cumulative(name, labels, value)
        readings.append(reading)
        if let last = lastCounters[key], time > last.time, value >= last.value {
            readings.append(Reading(rate, reading.labels, (value - last.value) / (time - last.time)))
        }
        lastCounters[key] = (time, value)
    }

    /// NVLink: each active link's data sent and received (NVML's field values, KiB counters by
    /// the driver's clock) and its error counters. A GPU without NVLink (or without an active
    /// link) answers NOT_SUPPORTED and loses the metric.
    private func nvlink(_ device: NVMLLibrary.Device, labels: [Reading.Label], into readings: inout [Reading]) -> Int32? {
        guard let state = library.nvLinkState, let fields = library.fieldValues else { return nil }
        let key = UnsafeMutableRawPointer(device)
        if activeLinks[key] == nil {
            var found: [UInt32] = []
            for link in UInt32(0)..<36 {  // NVML_NVLINK_MAX_LINKS
                var active: Int32 = 0
                let rc = state(device, link, &active)
                if rc == NVMLReturn.notSupported && link == 0 { return rc }
                if rc != NVMLReturn.success { break }  // INVALID_ARGUMENT past the device's last link
                if active == 1 { found.append(link) }
            }
            if found.isEmpty { return NVMLReturn.notSupported }
            activeLinks[key] = found
        }
        let links = activeLinks[key] ?? []
        var values = links.flatMap { link in
            [UInt32(138), 139].map { field in  // NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, _RX
                var value = boxcar_nvmlFieldValue_t()
                value.fieldId = field
                value.scopeId = link
                return value
            }
        }
        let rc = fields(device, Int32(values.count), &values)
        guard rc == NVMLReturn.success else { return rc }
        for value in values where value.nvmlReturn == NVMLReturn.success {
            let kibibytes = Self.number(value)
            let link = Reading.Label("nvlink", String(value.scopeId))
            let direction = Reading.Label("network.io.direction", value.fieldId == 138 ? "transmit" : "receive")
            counter(
                "hw.gpu.nvlink.io", rate: "hw.gpu.nvlink.io.rate", labels + [direction, link],
                key: CounterKey(device: key, counter: UInt64(value.fieldId) << 32 | UInt64(value.scopeId)),
                value: kibibytes * 1024, time: Double(value.timestamp) / 1_000_000, into: &readings)
        }
        if let errors = library.nvLinkErrorCounter {
            for link in links {
                for (type, name) in [(Int32(0), "replay"), (1, "recovery"), (2, "crc_flit"), (3, "crc_data")] {
                    var count: UInt64 = 0
                    guard errors(device, link, type, &count) == NVMLReturn.success else { continue }
                    readings.append(Reading.cumulative(
                        "hw.gpu.nvlink.errors", labels + [.init("error.type", name), .init("nvlink", String(link))], Double(count)))
                }
            }
        }
        return rc
    }

    /// The time power or thermal limits held the clocks down: a counter, and its share of the
    /// driver's clock. nvmlDeviceGetViolationStatus where the driver has it; drivers that retired
    /// it keep the same counters as field values (NVML_FI_DEV_PERF_POLICY_POWER, 74, and _THERMAL,
    /// 75: ns, stamped in µs), read from then on for that device.
    private func violation(
        _ power: Bool, _ device: NVMLLibrary.Device, labels: [Reading.Label], into readings: inout [Reading]
    ) -> Int32? {
        let key = UnsafeMutableRawPointer(device)
        let reason = labels + [Reading.Label("reason", power ? "power" : "thermal")]
        if !violationByField.contains(key), let status = library.violationStatus {
            var value = boxcar_nvmlViolationTime_t()
            let policy: Int32 = power ? 0 : 1  // NVML_PERF_POLICY_POWER, _THERMAL
            let rc = status(device, policy, &value)
            guard rc == NVMLReturn.notSupported || rc == NVMLReturn.functionNotFound || rc == NVMLReturn.deprecated else {
                if rc == NVMLReturn.success {
                    counter(
                        "hw.gpu.violation_time", rate: "hw.gpu.violation_time.rate", reason,
                        key: CounterKey(device: key, counter: UInt64(policy) << 32 | 0xFFFF_FFFF),
                        value: Double(value.violationTime) / 1e9, time: Double(value.referenceTime) / 1e6, into: &readings)
                }
                return rc
            }
        }
        guard let fields = library.fieldValues else { return library.violationStatus == nil ? nil : NVMLReturn.notSupported }
        var value = boxcar_nvmlFieldValue_t()
        value.fieldId = power ? 74 : 75
        let rc = fields(device, 1, &value)
        guard rc == NVMLReturn.success else { return rc }
        guard value.nvmlReturn == NVMLReturn.success else { return value.nvmlReturn }
        violationByField.insert(key)
        counter(
            "hw.gpu.violation_time", rate: "hw.gpu.violation_time.rate", reason,
            key: CounterKey(device: key, counter: UInt64(value.fieldId) << 32),
            value: Self.number(value) / 1e9, time: Double(value.timestamp) / 1e6, into: &readings)
        return rc
    }

    /// A field value as a number, whichever type the driver gave it.
    static func number(_ value: boxcar_nvmlFieldValue_t) -> Double {
        switch value.valueType {
        case 0: value.value.dVal
        case 1: Double(value.value.uiVal)
        case 2: Double(value.value.ulVal)
        case 4: Double(value.value.sllVal)
        case 5: Double(value.value.siVal)
        case 6: Double(value.value.usVal)
        default: Double(value.value.ullVal)
        }
    }

    /// The GPM metrics (Hopper and newer) that otherwise need DCGM, between this tick's sample and
    /// the last: NVML_GPM_METRIC_* ids, their series, labels, and the factor to the series' unit
    /// (GPM gives percent and MiB/s).
    static let gpmMetrics: [(id: UInt32, name: String, label: Reading.Label?, scale: Double)] = [
        (2, "hw.gpu.sm.activity", nil, 0.01),  // SM_UTIL: SMs busy
        (3, "hw.gpu.sm.occupancy", nil, 0.01),  // SM_OCCUPANCY: warps resident of the most possible
        (5, "hw.gpu.tensor.activity", nil, 0.01),  // ANY_TENSOR_UTIL
        (10, "hw.gpu.dram.activity", nil, 0.01),  // DRAM_BW_UTIL: of the peak bandwidth
        (11, "hw.gpu.pipe.activity", .init("pipe", "fp64"), 0.01),
        (12, "hw.gpu.pipe.activity", .init("pipe", "fp32"), 0.01),
        (13, "hw.gpu.pipe.activity", .init("pipe", "fp16"), 0.01),
        (20, "hw.gpu.io.rate", .init("network.io.direction", "transmit"), 1_048_576),  // PCIE_TX_PER_SEC
        (21, "hw.gpu.io.rate", .init("network.io.direction", "receive"), 1_048_576),
    ]

    /// GPM: a sample a tick, and the metrics between it and the last one (the driver wants them
    /// 100 ms apart at least: a tick is). A device without GPM answers NOT_SUPPORTED at the probe.
    private func gpm(_ device: NVMLLibrary.Device, labels: [Reading.Label], into readings: inout [Reading]) -> Int32? {
        guard let support = library.gpmQueryDeviceSupport, let allocate = library.gpmSampleAlloc,
            let take = library.gpmSampleGet, let metrics = library.gpmMetricsGet
        else { return nil }
        let key = UnsafeMutableRawPointer(device)
        if gpmSamples[key] == nil {
            var supported = boxcar_nvmlGpmSupport_t(version: 1, isSupportedDevice: 0)  // NVML_GPM_SUPPORT_VERSION
            let rc = support(device, &supported)
            guard rc == NVMLReturn.success else { return rc }
            guard supported.isSupportedDevice == 1 else { return NVMLReturn.notSupported }
            var first: OpaquePointer?
            var second: OpaquePointer?
            guard allocate(&first) == NVMLReturn.success, let first else { return NVMLReturn.notSupported }
            guard allocate(&second) == NVMLReturn.success, let second else {
                _ = library.gpmSampleFree?(first)
                return NVMLReturn.notSupported
            }
            gpmSamples[key] = (first, second, false)
        }
        guard var samples = gpmSamples[key] else { return nil }
        let rc = take(device, samples.current)
        guard rc == NVMLReturn.success else { return rc }
        if samples.primed {
            // On the heap: the request holds room for every metric id there is (19 KB).
            let request = UnsafeMutablePointer<boxcar_nvmlGpmMetricsGet_t>.allocate(capacity: 1)
            defer { request.deallocate() }
            request.initialize(to: boxcar_nvmlGpmMetricsGet_t())
            request.pointee.version = 1  // NVML_GPM_METRICS_GET_VERSION
            request.pointee.numMetrics = UInt32(Self.gpmMetrics.count)
            request.pointee.sample1 = UnsafeMutableRawPointer(samples.previous)
            request.pointee.sample2 = UnsafeMutableRawPointer(samples.current)
            let entries = UnsafeMutableRawPointer(request)
                .advanced(by: MemoryLayout<boxcar_nvmlGpmMetricsGet_t>.offset(of: \.metrics)!)
                .assumingMemoryBound(to: boxcar_nvmlGpmMetric_t.self)
            for (index, metric) in Self.gpmMetrics.enumerated() { entries[index].metricId = metric.id }
            if metrics(request) == NVMLReturn.success {
                gpmGivesPCIe[key] = Self.gpmMetrics.indices.allSatisfy { index in
                    Self.gpmMetrics[index].name != "hw.gpu.io.rate" || entries[index].nvmlReturn == NVMLReturn.success
                }
                for (index, metric) in Self.gpmMetrics.enumerated()
                where entries[index].nvmlReturn == NVMLReturn.success && entries[index].value.isFinite {
                    readings.append(Reading(metric.name, labels + (metric.label.map { [$0] } ?? []), entries[index].value * metric.scale))
                }
            }
        }
        samples.primed = true
        swap(&samples.previous, &samples.current)
        gpmSamples[key] = samples
        return NVMLReturn.success
    }

    deinit {
        for samples in gpmSamples.values {
            _ = library.gpmSampleFree?(samples.previous)
            _ = library.gpmSampleFree?(samples.current)
        }
    }

    typealias MemoryNames = (usage: String, limit: String, reserved: String)
    static let gpuMemory: MemoryNames = ("hw.gpu.memory.usage", "hw.gpu.memory.limit", "hw.gpu.memory.reserved")
    static let migMemory: MemoryNames = ("hw.gpu.mig.memory.usage", "hw.gpu.mig.memory.limit", "hw.gpu.mig.memory.reserved")

    /// The memory of a GPU or of a MIG instance as `….usage`, `.limit` and (version 2)
    /// `.reserved`. Version 2 splits out the memory the driver reserves, and its `used` excludes
    /// it, as nvidia-smi shows; version 1's `used` includes it (H200 on driver 580: 615 MiB more).
    private func memory(
        of device: NVMLLibrary.Device, labels: [Reading.Label], as names: MemoryNames, into readings: inout [Reading]
    ) -> Int32? {
        if let function = library.memoryInfoV2 {
            var value = boxcar_nvmlMemory_v2_t()
            value.version = boxcar_nvmlMemory_v2_version()
            let rc = function(device, &value)
            if rc == NVMLReturn.success {
                readings.append(Reading(names.usage, labels, Double(value.used)))
                readings.append(Reading(names.limit, labels, Double(value.total)))
                readings.append(Reading(names.reserved, labels, Double(value.reserved)))
                return rc
            }
        }
        guard let function = library.memoryInfo else { return nil }
        var value = boxcar_nvmlMemory_t()
        let rc = function(device, &value)
        if rc == NVMLReturn.success {
            readings.append(Reading(names.usage, labels, Double(value.used)))
            readings.append(Reading(names.limit, labels, Double(value.total)))
        }
        return rc
    }

    /// OpenTelemetry's generic hardware metrics (hw.power, hw.energy, hw.errors) say what the
    /// hardware is.
    static let gpuType = Reading.Label("hw.type", "gpu")

    /// nvmlClocksEventReason* bits, named as nvml.h names them.
    static let clocksEventReasons: [(UInt64, String)] = [
        (0x1, "gpu_idle"), (0x2, "applications_clocks_setting"), (0x4, "sw_power_cap"),
        (0x8, "hw_slowdown"), (0x10, "sync_boost"), (0x20, "sw_thermal_slowdown"),
        (0x40, "hw_thermal_slowdown"), (0x80, "hw_power_brake_slowdown"), (0x100, "display_clock_setting"),
    ]

    private func registerXIDEvents() {
        guard let create = library.eventSetCreate, let register = library.registerEvents, !devices.isEmpty else { return }
        var set: OpaquePointer?
        guard create(&set) == NVMLReturn.success, let set else { return }
        for device in devices {
            _ = register(device, 0x8, set)  // nvmlEventTypeXidCriticalError
        }
        eventSet = set
    }

    private static func string(
        _ device: NVMLLibrary.Device, _ function: ((NVMLLibrary.Device, UnsafeMutablePointer<CChar>, UInt32) -> Int32)?
    ) -> String? {
        guard let function else { return nil }
        var buffer = [CChar](repeating: 0, count: 96)
        guard function(device, &buffer, UInt32(buffer.count)) == NVMLReturn.success else { return nil }
        return String(cString: buffer)
    }
}
