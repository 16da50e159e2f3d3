import BoxcarModel
import BoxcarSensors
import BoxcarStorage
import BoxcarStore
import Logging
import NIOPosix
import Synchronization

// BoxcarSampling: the machine's readings on a schedule, into the local store.
//
// The sampler ticks, asks the sensors (BoxcarSensors) under a guard against hangs, and stores
// the readings as the host's series and each attached trainer's; retention keeps the machine's
// series within an age and the database within a size. What it stores is read back through the
// store, like every series. It knows nothing of gRPC or HTTP: the services and the process
// start-up sit above it.

/// Reads the machine every `interval` and records the readings as the host's series
/// (`system/<name>{labels}` under the parent `host`), each point at step = the tick's Unix time
/// in milliseconds. Experiments attached through `Attach` see these series for their windows,
/// and get the series of their own process trees (`system/process.…{pid=…}`) stored as theirs.
///
/// Ticks follow a fixed monotonic schedule (no drift); a tick that overruns skips the ticks it
/// missed rather than bunching them. A sensor that fails, hangs or gives readings that cannot be
/// stored is logged once and loses its own series only (see `SensorSet`).
public final class Sampler: Sendable {
    let store: Store
    public let interval: Duration
    let logger: Logger
    private let sensors: SensorSet
    /// The GPUs' energy read as each attached trainer's step begins (none without NVIDIA GPUs).
    public let stepMarks: StepMarks?
    /// The thread the sensors are read on. A tick blocks it (file reads, NVML, and up to a
    /// sensor's deadline when one hangs), so it is the sampler's own, not one of NIO's shared
    /// blocking pool, which has a thread per core and carries the artifacts' disk I/O.
    private let thread = NIOThreadPool(numberOfThreads: 1)
    /// The last tick, for the exporter's page.
    private let latest = Mutex<MachineSnapshot?>(nil)
    /// The trainers attached at the last tick whose read succeeded.
    private let lastAttached = Mutex<[(experimentID: String, pid: Int32)]>([])
    /// Each attached trainer's cgroup's OOM kills as last read, to see them rise.
    private let oomKills = Mutex<[Int32: Double]>([:])
    /// Where ticks are stamped: on their schedule (see TickStamps).
    private let stamps: Mutex<TickStamps>
    /// Whether each tick is kept for the exporter (`--http`): an agent without one does not
    /// pay for the copies, but while a live view asks (`live()`).
    let keepsSnapshot: Bool
    /// Until when a live view keeps the ticks kept.
    let liveUntil = Mutex<ContinuousClock.Instant?>(nil)
    /// How long the ticks are kept after a live view's last call.
    public static let liveFor: Duration = .seconds(60)
    /// Whether the counters read beside their rates are stored (remote write sends them).
    let storesCumulative: Bool
    /// The last tick, as the exporter shows it; nil before the first, and without `keepsSnapshot`.
    public var snapshot: MachineSnapshot? { latest.withLock { $0 } }

    /// The last tick, for a live view (`boxcar top`): ticks are kept from this call on, for
    /// `liveFor` after the last. Where none was kept lately, waits for the next tick: nil when
    /// none comes within two intervals and a second, or 5 s (a long interval: the caller asks
    /// again), or the sampler is stuck or stopping.
    public func live() async throws -> MachineSnapshot? {
        let now = ContinuousClock.now
        liveUntil.withLock { $0 = now + Self.liveFor }
        let fresh = WallClock.now() - Int64((interval * 2).seconds * 1e9)
        let deadline = now + min(interval * 2 + .seconds(1), .seconds(5))
        while true {
            if let snapshot, snapshot.wallclock >= fresh { return snapshot }
            guard ContinuousClock.now < deadline else { return nil }
            try await Task.sleep(for: min(max(interval / 10, .milliseconds(10)), .milliseconds(100)))
        }
    }

    public init(
        store: Store, interval: Duration, sensors: [any Sensor], processes: ProcessTreeSensor,
        nvidia: NVIDIAGPUSensor?, logger: Logger, sensorDeadline: Duration = SensorSet.deadline, keepsSnapshot: Bool = false,
        storesCumulative: Bool = false
    ) {
        self.keepsSnapshot = keepsSnapshot
        self.storesCumulative = storesCumulative
        self.store = store
        self.interval = interval
        let stamps = TickStamps(interval: interval)
        self.stamps = Mutex(stamps)
        self.logger = logger
        self.sensors = SensorSet(sensors: sensors, processes: processes, nvidia: nvidia, deadline: sensorDeadline)
        self.stepMarks = nvidia.flatMap { $0.readsStepCounters ? StepMarks(store: store, nvidia: $0, logger: logger) : nil }
        self.sensors.stampTolerance = stamps.tolerance
        self.sensors.storesCumulative = storesCumulative
        thread.start()
    }

    deinit {
        thread.shutdownGracefully { _ in }
    }

    public func run() async throws {
        let clock = ContinuousClock()
        var next = clock.now
        var last: ContinuousClock.Instant?
        var failing = false
        while !Task.isCancelled {
            let now = clock.now
            let elapsed = last.map { now - $0 }
            last = now
            do {
                try await tick(elapsed: elapsed, scheduled: next)
                failing = false
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // A refused write (a full disk) loses this tick, not the sampler.
                if !failing { logger.error("a sample could not be stored; sampling goes on", metadata: ["error": "\(error)"]) }
                failing = true
            }
            next = next.advanced(by: interval)
            while next <= clock.now { next = next.advanced(by: interval) }
            try await Task.sleep(until: next, clock: clock)
        }
    }

    func tick(elapsed: Duration?, scheduled: ContinuousClock.Instant? = nil) async throws {
        let wallclock = stamps.withLock { $0.stamp(scheduled: scheduled ?? .now, now: .now, wallclock: WallClock.now()) }
        let step = UInt64(wallclock / 1_000_000)
        // A failed read keeps the last list: an empty one would end every tree's running totals.
        let attached: [(experimentID: String, pid: Int32)]
        if let read = try? await store.attachedProcesses() {
            attached = read
            lastAttached.withLock { $0 = read }
            stepMarks?.attached(Set(read.map(\.experimentID)))
        } else {
            attached = lastAttached.withLock { $0 }
        }
        let roots = attached.map(\.pid)
        // Sensors block (file reads, NVML): on the sampler's own thread, not the concurrency pool's.
        let sensors = self.sensors
        let logger = self.logger
        let keepsSnapshot = self.keepsSnapshot || liveUntil.withLock { $0.map { $0 > .now } ?? false }
        let ((readings, trees, xids, gone), view) = try await thread.runIfActive {
            sensors.keepsLatest = keepsSnapshot
            return (sensors.sample(elapsed: elapsed, stamp: wallclock, roots: roots, logger: logger), keepsSnapshot ? sensors.view() : nil)
        }
        if view == nil { latest.withLock { $0 = nil } }
        // A trainer that died without detaching (killed, out of memory) is detached for it.
        for (experimentID, pid) in attached where gone.contains(pid) {
            _ = try? await store.detach(experimentID: experimentID, pid: pid)
            logger.info("attached process is gone; detached", metadata: ["experiment": "\(experimentID)", "pid": "\(pid)"])
        }
        if let view {
            latest.withLock {
                $0 = MachineSnapshot(
                    wallclock: wallclock, host: view.host,
                    trainers: attached.filter { !gone.contains($0.pid) }.map { experimentID, pid in
                        .init(experimentID: experimentID, pid: pid, processes: view.processes[pid] ?? [], readings: view.trees[pid] ?? [])
                    },
                    sensors: view.health)
            }
        }
        // One tick per parent (a row of the store's head): an experiment at its series limit
        // loses its own tick only, not the machine's nor the other experiments'.
        var ticks: [String: Store.Tick] = [:]
        func tick(_ parent: String) -> Store.Tick { Store.Tick(parentID: parent, step: step, wallclock: wallclock) }
        func add(_ reading: KeyedReading, to parent: String) {
            ticks[parent, default: tick(parent)].keys.append(reading.key)
            ticks[parent, default: tick(parent)].values.append(reading.value)
        }
        for reading in readings { add(reading, to: Store.hostID) }
        for (experimentID, pid) in attached {
            for reading in trees[pid] ?? [] where storesCumulative || !reading.reading.isCumulative { add(reading, to: experimentID) }
        }
        // A rise of a trainer's cgroup's OOM kills is an event of its experiment: the moment a
        // rank or a data-loader worker was killed shows on the run's timeline. Kills before the
        // first read (before the attach) are not the run's to tell.
        let risen = oomKills.withLock { last in
            var risen: [(experimentID: String, pid: Int32, kills: Double)] = []
            last = last.filter { pid, _ in roots.contains(pid) }
            for (experimentID, pid) in attached {
                guard let now = trees[pid]?.first(where: { $0.reading.name == "container.memory.oom_kills" })?.reading.value else { continue }
                if let before = last[pid], now > before { risen.append((experimentID, pid, now - before)) }
                last[pid] = now
            }
            return risen
        }
        for (experimentID, pid, kills) in risen {
            ticks[experimentID, default: tick(experimentID)].events.append(Event(
                parentID: experimentID, name: "memory.oom_kill", source: "boxcar.cgroup", wallclock: wallclock,
                metadata: ["pid": .number(Double(pid)), "kills": .number(kills)], createdAt: 0))
            logger.warning("the OOM killer killed processes of a trainer's cgroup", metadata: [
                "experiment": "\(experimentID)", "pid": "\(pid)", "kills": "\(Int(kills))",
            ])
        }
        // XID errors are events of the host and of every experiment attached now.
        for (gpu, xid) in xids {
            for parent in [Store.hostID] + Set(attached.map(\.experimentID)).sorted() {
                ticks[parent, default: tick(parent)].events.append(Event(
                    parentID: parent, name: "gpu.xid", source: "boxcar.nvml", wallclock: wallclock,
                    metadata: ["gpu": .number(Double(gpu)), "xid": .number(Double(xid))], createdAt: 0))
            }
        }
        try await store.appendTicks(ticks.sorted { $0.key < $1.key }.map(\.value))
    }
}

/// The wallclock a tick is stored at: the wall clock's time at its place on the sampling schedule,
/// while the tick was read within `tolerance` of it. Ticks an interval apart to the nanosecond cost
/// a compacted block a few bits for their times (a run of deltas of deltas of 0); stamped at the moment
/// each woke, their jitter costs 2 to 3 bytes a point, more than most values. Prometheus aligns its
/// scrapes' timestamps for the same reason. A tick read later than the tolerance (a loaded
/// machine) keeps its own time; a wall clock that moved against the monotonic one by more (a step
/// of NTP, a suspend, slow drift) anchors the schedule anew.
struct TickStamps {
    let tolerance: Int64
    private var anchor: (wallclock: Int64, instant: ContinuousClock.Instant)?
    private var last: Int64?

    init(interval: Duration) {
        tolerance = min(Int64(interval.seconds * 1e9) / 10, 25_000_000)
    }

    mutating func stamp(scheduled: ContinuousClock.Instant, now: ContinuousClock.Instant, wallclock: Int64) -> Int64 {
        var stamp = schedule(scheduled: scheduled, now: now, wallclock: wallclock)
        // A tick that kept its own time (it woke late) may be up to the tolerance past where the
        // next, on time, is planned: the next is then a millisecond after it, so steps never
        // repeat nor go back. A wall clock set back further is followed.
        if let last, stamp <= last, last - stamp <= tolerance { stamp = last + 1_000_000 }
        last = stamp
        return stamp
    }

    private mutating func schedule(scheduled: ContinuousClock.Instant, now: ContinuousClock.Instant, wallclock: Int64) -> Int64 {
        // The wall clock's time when the tick was due: its own now, less how late the tick woke.
        let due = wallclock - max(0, (now - scheduled).nanoseconds)
        if let anchor {
            let planned = anchor.wallclock + (scheduled - anchor.instant).nanoseconds
            if abs(due - planned) <= tolerance {
                return abs(wallclock - planned) <= tolerance ? planned : wallclock
            }
        }
        // On a whole millisecond, so that the step (milliseconds) is the wallclock exactly.
        let start = due - due % 1_000_000
        anchor = (start, scheduled)
        return abs(wallclock - start) <= tolerance ? start : wallclock
    }
}

extension Duration {
    /// The duration in whole nanoseconds.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
