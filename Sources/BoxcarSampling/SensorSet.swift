#if canImport(Glibc)
import Glibc
#endif
import BoxcarModel
import BoxcarSensors
import Logging

/// The sensors, touched by one tick at a time (the sampler's loop), and which failures were
/// already logged.
///
/// Each sensor is isolated from the others: one that throws, hangs or returns what cannot be
/// stored loses its own series only. A tick's calls run one after another on a `HangGuard`'s
/// thread, each within `deadline`: a sensor that has not answered by then (a stuck driver, a
/// hung network filesystem) is left out of this tick and of every tick until its call returns;
/// the others go on. (The process tree reads /proc of the trainers' own processes, which answers
/// even for one in D state; it is not guarded.)
public final class SensorSet: @unchecked Sendable {
    /// How long a sensor's call is waited for (`boxcar doctor` waits as long).
    public static let deadline: Duration = .seconds(2)
    let sensors: [any Sensor]
    let processes: ProcessTreeSensor
    let nvidia: NVIDIAGPUSensor?
    /// How long each guarded call is waited for (changed by tests only).
    var deadline: Duration
    let limits = Limits.standard
    private let guardian = HangGuard<String>()
    /// Each sensor's last answered call: its counters' rates span the time since then, which is
    /// more than a tick after it skipped some.
    private var lastAnswered: [String: ContinuousClock.Instant] = [:]
    /// The stamp of the tick being read (its wallclock, ns), and of each sensor's last answered
    /// call and the process trees' last tick: rates are taken over the stamps (`elapsed(…)`).
    private var stamp: Int64?
    private var lastStamps: [String: Int64] = [:]
    private var lastTreeStamp: Int64?
    /// The trainers' trees are read whole, every tick while they hold `processesPerTick`
    /// processes or fewer in all; bigger ones every ⌈n / processesPerTick⌉ ticks. A process costs
    /// the kernel 5 to 10 µs a read (its stat, io and fd/, each summed over its threads; fd/ at
    /// every fourth read only, `ProcessTreeSensor.detailEvery`), so 400 data-loader workers
    /// read every second would cost more than all the rest of a 192-CPU machine's sensors; read
    /// every seventh, they cost less. A trainer attached or detached is read at once.
    public static let processesPerTick = 64
    /// Ticks to go before the trees are read again, the roots they were read for, the time
    /// measured since (summed over the ticks between), and their last readings (for the page).
    private var treeTicksToGo = 0
    private var treeRoots: [Int32] = []
    private var sinceTreeRead: Duration?
    private(set) var lastTrees: [Int32: [Reading]] = [:]
    /// How far a tick's stamp may be from the time it was read (TickStamps.tolerance).
    var stampTolerance: Int64 = 0
    /// What is wrong with each sensor now (for the log, once per new problem).
    private(set) var problems: [String: String] = [:]
    var ticks = 0
    /// The cgroup of each attached trainer, which may be another container than the agent's.
    var trainerCgroups: [Int32: CgroupSensor] = [:]
    /// Each sensor's last answer, for the exporter's page: a sensor read every tenth tick keeps
    /// its values between, one that failed or hangs has none. Kept only when `keepsLatest`.
    private(set) var latest: [String: [Reading]] = [:]
    /// Turned off, what was kept goes: turned on again, a sensor read every few ticks must not
    /// show a value from before.
    var keepsLatest = false {
        didSet { if !keepsLatest { latest = [:] } }
    }
    /// Whether counters read beside their rates (`Reading.isCumulative`) are stored: only while
    /// remote write, which sends them, is on.
    var storesCumulative = false
    /// Each sensor's readings' keys at its last answer, in its order: a sensor gives the same
    /// series in the same order tick after tick, and comparing a reading's name and labels with
    /// the last one's in its place costs less than making its key and checking it again (which
    /// was a third of a 192-CPU node's tick).
    private var keys: [String: [KnownKey]] = [:]
    private struct KnownKey {
        var name: String
        var labels: [Reading.Label]
        var key: String
        var valid: Bool
    }
    /// How each sensor has fared since the agent started (the exporter publishes it).
    public private(set) var health: [String: SensorHealth] = [:]

    public init(sensors: [any Sensor], processes: ProcessTreeSensor, nvidia: NVIDIAGPUSensor?, deadline: Duration = SensorSet.deadline) {
        self.sensors = sensors
        self.processes = processes
        self.nvidia = nvidia
        self.deadline = deadline
    }

    /// Calls each sensor's `body` under the guard, one after another on its thread; nil for
    /// one that failed or did not answer.
    private func guarded<Value>(_ calls: [(name: String, body: (Duration?) throws -> Value)], logger: Logger) -> [Value?] {
        // Each call's start and CPU time are taken where it runs, on the guard's thread: a call
        // after one that hung starts a deadline later, and its rates span the time since its
        // own last start. It reads copies of what it needs, not the set's state.
        let (stamp, tolerance) = (self.stamp, stampTolerance)
        let outcomes = guardian.runAll(calls.map { name, body in
            let (last, lastStamp) = (lastAnswered[name], lastStamps[name])
            return (name, { () -> (Result<Value, any Error>, Double, ContinuousClock.Instant) in
                let started = ContinuousClock.now
                let elapsed = Self.elapsed(measured: last.map { started - $0 }, from: lastStamp, to: stamp, tolerance: tolerance)
                let before = threadCPUSeconds()
                let result = Result { try body(elapsed) }
                return (result, threadCPUSeconds() - before, started)
            })
        }, within: deadline)
        return zip(calls, outcomes).map { call, outcome in
            let name = call.name
            var entry = health[name] ?? SensorHealth(name: name)
            defer { health[name] = entry }
            switch outcome {
            case .finished((.success(let value), let cpu, let started)):
                entry.record(cpuSeconds: cpu)
                lastAnswered[name] = started
                lastStamps[name] = stamp
                if problems.removeValue(forKey: name) != nil { logger.notice("sensor \(name) works again") }
                return value
            case .finished((.failure(let error), let cpu, _)):
                entry.record(cpuSeconds: cpu)
                entry.errors += 1
                report(name, "failed: \(error)", logger: logger)
            case .timedOut:
                entry.hangs += 1
                lastAnswered[name] = nil
                lastStamps[name] = nil
                report(name, "did not answer within \(deadline); its series stop until it does", logger: logger)
            case .stillRunning:
                break
            }
            return nil
        }
    }

    private func report(_ name: String, _ problem: String, logger: Logger) {
        guard problems[name] != problem else { return }
        problems[name] = problem
        logger.warning("sensor \(name) \(problem); the other sensors go on")
    }

    /// The readings that can be stored, with their keys: a finite value under a valid key. A
    /// sensor that gives others (garbage in a sysfs file, a label with control characters) loses
    /// those only.
    private func storable(_ readings: [Reading], from name: String, logger: Logger) -> [KeyedReading] {
        var rejected: [String] = []
        var kept: [KeyedReading] = []
        kept.reserveCapacity(readings.count)
        // Changed in place where a reading is not the last tick's in its place (taken out of the
        // dictionary to be the array's only owner): most ticks change nothing.
        var known = keys.removeValue(forKey: name) ?? []
        if known.count > readings.count { known.removeLast(known.count - readings.count) }
        for (index, reading) in readings.enumerated() {
            if index == known.count || known[index].name != reading.name || known[index].labels != reading.labels {
                let text = reading.seriesKey
                let key = KnownKey(name: reading.name, labels: reading.labels, key: text, valid: (try? limits.checkKey(text)) != nil)
                if index == known.count { known.append(key) } else { known[index] = key }
            }
            if known[index].valid && reading.value.isFinite {
                kept.append(KeyedReading(reading, key: known[index].key))
            } else {
                rejected.append(known[index].key)
            }
        }
        keys[name] = known
        // Kept apart from the sensor's call problems, which an answered call clears.
        let key = name + " readings"
        if let first = rejected.first {
            report(key, "gave \(rejected.count) readings that cannot be stored (such as \(first.debugDescription)); they are dropped", logger: logger)
        } else if problems.removeValue(forKey: key) != nil {
            logger.notice("sensor \(name) gives readings that can be stored again")
        }
        return kept
    }

    /// The time a rate is taken over: the difference of the two ticks' stamps, where it is within
    /// the stamps' tolerance of the time measured between the reads, else the time measured.
    /// Ticks read on schedule are then an interval apart exactly, as they are stored: a rate times
    /// the stored interval is the counter's change, as Prometheus' rate() over its aligned
    /// scrapes, and a whole number of events a second stays whole, a ratio that a compacted block
    /// keeps in a byte or two where a measured interval's jitter fills a double's every bit.
    static func elapsed(measured: Duration?, from earlier: Int64?, to stamp: Int64?, tolerance: Int64) -> Duration? {
        guard let measured, let earlier, let stamp else { return measured }
        let stamped = stamp - earlier
        return stamped > 0 && abs(stamped - measured.nanoseconds) <= tolerance ? .nanoseconds(stamped) : measured
    }

    /// The host's readings, each root's process-tree readings, XID errors, and the roots whose
    /// process no longer exists. `stamp`: the tick's wallclock as stored.
    public func sample(
        elapsed measured: Duration?, stamp: Int64? = nil, roots: [Int32], logger: Logger
    ) -> ([KeyedReading], [Int32: [KeyedReading]], [(gpu: Int, xid: UInt64)], Set<Int32>) {
        self.stamp = stamp
        defer { ticks += 1 }
        let readsTrees = treeTicksToGo == 0 || roots.sorted() != treeRoots
        var trees: [Int32: [Reading]] = [:]
        sinceTreeRead = measured.map { (sinceTreeRead ?? .zero) + $0 }
        let elapsed = Self.elapsed(measured: sinceTreeRead, from: lastTreeStamp, to: stamp, tolerance: stampTolerance)
        if readsTrees {
            lastTreeStamp = stamp
            sinceTreeRead = measured.map { _ in .zero }
            let before = threadCPUSeconds()
            trees = processes.sample(roots: roots, seconds: elapsed?.seconds ?? 0)
            health[processes.name, default: SensorHealth(name: processes.name)].record(cpuSeconds: threadCPUSeconds() - before)
            let count = roots.reduce(0) { $0 + (processes.lastTree[$1]?.count ?? 0) }
            treeTicksToGo = (count + Self.processesPerTick - 1) / Self.processesPerTick
            treeRoots = roots.sorted()
        }
        treeTicksToGo = max(0, treeTicksToGo - 1)
        // Each trainer's own container numbers (the host's cgroup series are the agent's). A
        // trainer that is gone has its cgroup read once more, from where it last was: the OOM
        // killer killing the trainer itself (a rank, most often) shows there.
        let gone = Set(roots.filter { trees[$0] == nil && !processes.exists($0) })
        let host = sensors.lazy.compactMap { $0 as? CgroupSensor }.first
        trainerCgroups = trainerCgroups.filter { roots.contains($0.key) }
        for root in roots where trees[root] != nil || gone.contains(root) {
            guard let host else { break }
            guard let cgroup = trainerCgroups[root] ?? (gone.contains(root) ? nil : host.following(process: root)) else { continue }
            trainerCgroups[root] = cgroup
            // Unreadable cgroups are reported once by the host's cgroup sensor.
            let mine = (try? cgroup.sample(elapsed: elapsed)) ?? []
            trees[root, default: []] += mine.map { reading in
                var labelled = Reading(reading.name, reading.labels + [.init("process.pid", String(root))], reading.value)
                labelled.isCumulative = reading.isCumulative
                return labelled
            }
        }

        // The guarded calls, all in one hand-off to the guard's thread: the sensors due this
        // tick, then the GPUs' XID events and readings apart (a GPU call that hangs must not
        // take the event queue with it, when a GPU falling off the bus is what the events
        // report), and their slow counters when due (between, the page keeps their last answer,
        // as a slower sensor's). GPU memory of the trainers' processes goes to the tree holding
        // each PID.
        let due = sensors.filter { ticks % $0.cadence == 0 }
        let readsSlow = nvidia.map { ticks % $0.slowEvery == 0 } ?? false
        let counters = keepsLatest || storesCumulative
        var calls: [(name: String, body: (Duration?) throws -> Answer)] = due.map { sensor in
            (sensor.name, { .readings(try sensor.sample(elapsed: $0, counters: counters)) })
        }
        var owner: [Int32: Int32] = [:]
        if let nvidia {
            for root in roots {
                for pid in processes.lastTree[root] ?? [root] { owner[pid] = root }
            }
            let pids = Set(owner.keys)
            calls.append(("nvidia.xid", { _ in .xids(nvidia.xidErrors()) }))
            calls.append(("nvidia", { _ in .readings(nvidia.sample(processes: pids, part: .fast)) }))
            if readsSlow { calls.append(("nvidia.slow", { _ in .readings(nvidia.sample(part: .slow)) })) }
        }
        var answers = guarded(calls, logger: logger)

        var readings: [KeyedReading] = []
        for (sensor, answer) in zip(due, answers) {
            guard let answer = answer?.readings else {
                latest[sensor.name] = nil
                continue
            }
            if keepsLatest || storesCumulative {
                let kept = storable(answer, from: sensor.name, logger: logger)
                readings += storesCumulative ? kept : kept.filter { !$0.reading.isCumulative }
                if keepsLatest { latest[sensor.name] = kept.map(\.reading) }
            } else {
                // Most sensors leave their counters out when asked: no copy to drop them then.
                let rates = answer.contains(where: \.isCumulative) ? answer.filter { !$0.isCumulative } : answer
                readings += storable(rates, from: sensor.name, logger: logger)
            }
        }
        var xids: [(gpu: Int, xid: UInt64)] = []
        if nvidia != nil {
            if readsSlow {
                let slow = answers.removeLast()?.readings
                let kept = storable(slow ?? [], from: "nvidia.slow", logger: logger)
                readings += kept
                latest["nvidia.slow"] = slow == nil || !keepsLatest ? nil : kept.map(\.reading)
            }
            let gpus = answers.removeLast()?.readings
            if case .xids(let events)? = answers.removeLast() { xids = events }
            latest["nvidia"] = gpus == nil || !keepsLatest ? nil : []
            for keyed in storable(gpus ?? [], from: "nvidia", logger: logger) {
                if keyed.reading.name == "hw.gpu.process.memory.usage" {
                    // With its tree's other readings, on the ticks the trees are read.
                    if readsTrees, let pid = keyed.reading.labels.first(where: { $0.name == "process.pid" }).flatMap({ Int32($0.value) }), let root = owner[pid] {
                        trees[root, default: []].append(keyed.reading)
                    }
                } else {
                    readings.append(keyed)
                    if keepsLatest { latest["nvidia", default: []].append(keyed.reading) }
                }
            }
        }
        if readsTrees { lastTrees = trees }
        return (readings, trees.mapValues { $0.map(KeyedReading.init) }, xids, gone)
    }
}

/// What a guarded call gives: a sensor's readings, or the GPUs' XID events.
private enum Answer {
    case readings([Reading])
    case xids([(gpu: Int, xid: UInt64)])

    var readings: [Reading]? {
        if case .readings(let readings) = self { readings } else { nil }
    }
}

extension SensorSet {
    /// What the exporter's page shows of the last tick: every sensor's latest readings, each
    /// tree's processes, and how the sensors fare.
    func view() -> (
        host: [Reading], processes: [Int32: [ProcessTreeSensor.ProcessSample]], trees: [Int32: [Reading]], health: [SensorHealth]
    ) {
        let order = sensors.map(\.name) + ["nvidia", "nvidia.slow"]
        return (order.flatMap { latest[$0] ?? [] }, processes.lastProcesses, lastTrees, health.values.sorted { $0.name < $1.name })
    }
}

/// The last tick as the exporter shows it.
public struct MachineSnapshot: Sendable {
    /// When the tick was taken: nanoseconds since the Unix epoch.
    public var wallclock: Int64
    /// The machine's latest readings, each sensor's from its last answer.
    public var host: [Reading]
    public var trainers: [Trainer]
    public var sensors: [SensorHealth]

    public init(wallclock: Int64, host: [Reading], trainers: [Trainer], sensors: [SensorHealth]) {
        self.wallclock = wallclock
        self.host = host
        self.trainers = trainers
        self.sensors = sensors
    }

    /// An attached trainer: its experiment, its root process, each process of its tree, and the
    /// readings stored as its own (tree totals, its cgroup, its GPU memory, each with `pid`).
    public struct Trainer: Sendable {
        public var experimentID: String
        public var pid: Int32
        public var processes: [ProcessTreeSensor.ProcessSample]
        public var readings: [Reading]

        public init(experimentID: String, pid: Int32, processes: [ProcessTreeSensor.ProcessSample], readings: [Reading]) {
            self.experimentID = experimentID
            self.pid = pid
            self.processes = processes
            self.readings = readings
        }
    }
}

/// How one sensor has fared since the agent started.
public struct SensorHealth: Sendable, Equatable {
    public var name: String
    /// Calls that answered (an error or readings).
    public var calls = 0
    public var errors = 0
    /// Calls that did not answer within the deadline.
    public var hangs = 0
    /// CPU time its answered calls took, in all and in the last one.
    public var cpuSeconds = 0.0
    public var lastCPUSeconds = 0.0

    public init(name: String) {
        self.name = name
    }

    mutating func record(cpuSeconds cpu: Double) {
        calls += 1
        cpuSeconds += cpu
        lastCPUSeconds = cpu
    }
}

/// The CPU time the calling thread has used.
func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// A reading and its series key, made once: the key is checked and then stored.
public struct KeyedReading: Sendable {
    public let reading: Reading
    public let key: String
    public var value: Double { reading.value }

    public init(_ reading: Reading) {
        self.init(reading, key: reading.seriesKey)
    }

    init(_ reading: Reading, key: String) {
        self.reading = reading
        self.key = key
    }

    /// A finite value under a key the store takes (length, no control characters).
    public func isStorable(_ limits: Limits = .standard) -> Bool {
        value.isFinite && (try? limits.checkKey(key)) != nil
    }
}
