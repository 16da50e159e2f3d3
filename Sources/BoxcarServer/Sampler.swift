import BoxcarModel
import BoxcarSensors
import BoxcarStore
import Logging

/// Reads the machine every `interval` and records the readings as the host's series
/// (`system/<name>{labels}` under the parent `host`), each point at step = the tick's Unix time
/// in milliseconds. Experiments attached through `Attach` see these series for their windows.
///
/// Ticks follow a fixed monotonic schedule (no drift); a tick that overruns skips the ticks it
/// missed rather than bunching them. A sensor that fails is logged once and tried again each tick.
final class Sampler: Sendable {
    let store: Store
    let interval: Duration
    let logger: Logger
    private let sensors: SensorSet

    init(store: Store, interval: Duration, sensors: [any Sensor], nvidia: NVIDIAGPUSensor?, logger: Logger) {
        self.store = store
        self.interval = interval
        self.logger = logger
        self.sensors = SensorSet(sensors: sensors, nvidia: nvidia)
    }

    func run() async throws {
        let clock = ContinuousClock()
        var next = clock.now
        var last: ContinuousClock.Instant?
        while !Task.isCancelled {
            let now = clock.now
            let elapsed = last.map { now - $0 }
            last = now
            try await tick(elapsed: elapsed)
            next = next.advanced(by: interval)
            while next <= clock.now { next = next.advanced(by: interval) }
            try await Task.sleep(until: next, clock: clock)
        }
    }

    func tick(elapsed: Duration?) async throws {
        let attached = (try? await store.attachedProcesses()) ?? []
        let (readings, xids) = sensors.sample(elapsed: elapsed, processes: Set(attached.map(\.pid)), logger: logger)
        let wallclock = WallClock.now()
        let step = UInt64(wallclock / 1_000_000)
        var batch = IngestBatch()
        batch.series = readings.map { reading in
            var columns = MetricColumns()
            columns.append(step: step, wallclock: wallclock, value: reading.value)
            return .init(parentID: Store.hostID, key: reading.seriesKey, columns: columns)
        }
        // XID errors are events of the host and of every experiment attached now.
        let parents = [Store.hostID] + Set(attached.map(\.experimentID)).sorted()
        for (gpu, xid) in xids {
            for parent in parents {
                batch.events.append(Event(
                    parentID: parent, name: "gpu.xid", source: "boxcar.nvml", wallclock: wallclock,
                    metadata: ["gpu": .number(Double(gpu)), "xid": .number(Double(xid))], createdAt: 0))
            }
        }
        guard !batch.series.isEmpty || !batch.events.isEmpty else { return }
        try await store.ingest(batch)
    }
}

/// The sensors, touched by one tick at a time (the sampler's loop), and which failures were
/// already logged.
private final class SensorSet: @unchecked Sendable {
    let sensors: [any Sensor]
    let nvidia: NVIDIAGPUSensor?
    var reported: Set<String> = []

    init(sensors: [any Sensor], nvidia: NVIDIAGPUSensor?) {
        self.sensors = sensors
        self.nvidia = nvidia
    }

    func sample(elapsed: Duration?, processes: Set<Int32>, logger: Logger) -> ([Reading], [(gpu: Int, xid: UInt64)]) {
        var readings: [Reading] = []
        for sensor in sensors {
            do {
                readings += try sensor.sample(elapsed: elapsed)
                reported.remove(sensor.name)
            } catch {
                if reported.insert(sensor.name).inserted {
                    logger.warning("sensor \(sensor.name) failed; retrying each tick", metadata: ["error": "\(error)"])
                }
            }
        }
        var xids: [(gpu: Int, xid: UInt64)] = []
        if let nvidia {
            readings += nvidia.sample(processes: processes)
            xids = nvidia.xidErrors()
        }
        return (readings, xids)
    }
}
