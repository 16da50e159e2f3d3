/// What each training step cost the machine: for each interval between the trainer's consecutive
/// logged steps, its wall time, the GPUs' energy, their mean utilization, the share of it a
/// clocks-event reason that slows the GPU (power cap, thermal, hardware slowdown) held, the
/// trainer's peak GPU memory, the machine's CPU iowait and the trainer tree's CPU.
///
/// Energy and throttling come from the GPUs' counters read as each step began (`marks`,
/// StepMarks) where every GPU's were read at both of a step's ends. The steps between two such
/// reads share the energy the counters rose by between them, each as the ticks' power weighs it.
/// The rest, and those without reads, are taken from the sampler's ticks stored with the run (its attached windows,
/// `system/…`): a tick's value stands for the time since the tick before (a rate is measured over
/// that time; a gauge is taken as holding over it), and a step's value is the mean (the integral,
/// for energy; the most, for memory) of that over the step's interval. A step shorter than a tick
/// gets the value of the tick around it. `interpolated` names these columns.
public struct StepCosts: Sendable, Equatable {
    /// The trainer's key whose points mark the steps.
    public var key: String
    public var steps: [StepCost]
    /// The columns taken from ticks rather than read at the steps themselves (energy and throttling
    /// are read at the steps where the GPUs' counters were read at every step's ends).
    public var interpolated: [String]

    public struct StepCost: Sendable, Equatable {
        /// The step logged at the interval's end: the work that filled it.
        public var step: UInt64
        /// The interval, ns since the epoch.
        public var start: Int64
        public var end: Int64
        /// J over every GPU.
        public var energyJoules: Double?
        /// Mean over the interval and the GPUs, 0…1.
        public var gpuUtilization: Double?
        /// Share of the interval the GPU held longest had its clocks held by power, thermal or
        /// hardware slowdown.
        public var throttled: Double?
        /// The most GPU memory the trainer's processes held together.
        public var gpuMemoryPeakBytes: Double?
        /// The machine's CPU share waiting on I/O.
        public var iowait: Double?
        /// The trainer's process tree's share of all CPUs.
        public var cpu: Double?

        public var seconds: Double { StepCosts.seconds(from: start, to: end) }
    }

    /// Where the agent keeps what it reads as each step of an attached trainer begins (the GPUs'
    /// energy and violation-time counters: `system/step/hw.energy{…}`,
    /// `system/step/hw.gpu.violation_time{…}` at the trainer's step).
    public static let markPrefix = "system/step/"

    /// The column names, as the CLI and the API give them.
    public static let columns = ["energy_joules", "gpu_utilization", "throttled", "gpu_memory_peak_bytes", "iowait", "cpu"]

    /// Reasons that slow a GPU down (not gpu_idle, nor the application's own clock setting).
    public static let slowdowns: Set<String> = [
        "sw_power_cap", "hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown", "sw_thermal_slowdown",
    ]

    /// The machine series the costs are read from, of the keys a run has.
    public static func machineKeys(_ keys: [String]) -> [String] {
        keys.filter { key in
            guard let parsed = SeriesKey(parsing: key) else { return false }
            return Source(parsed) != nil
        }
    }

    /// The trainer's key that marks its steps when none is named: of its own keys, the one with
    /// the most points (then the first by name).
    public static func stepKey(_ series: [(key: String, columns: MetricColumns)]) -> String? {
        series.filter { !$0.key.hasPrefix("system/") }
            .max { ($0.columns.count, $1.key) < ($1.columns.count, $0.key) }?.key
    }

    /// The costs of the steps of `clock` (the trainer's key's points), from the machine's `series`
    /// and the `marks` read as its steps began: a step whose two ends have a mark of every GPU gets
    /// its energy from them, exact; one between two marks, its share of theirs; the others, from
    /// the ticks.
    public init(key: String, clock: MetricColumns, series: [(key: String, columns: MetricColumns)],
                marks: [(key: String, columns: MetricColumns)] = []) {
        self.key = key
        // Each GPU's energy counter at each step it was read.
        func byStep(_ columns: MetricColumns) -> [UInt64: Double] {
            Dictionary((0..<columns.count).map { (columns.steps[$0], columns.values[$0]) }, uniquingKeysWith: { first, _ in first })
        }
        let energyMarks = marks.filter { $0.key.hasPrefix(Self.markPrefix + "hw.energy") }.map { byStep($0.columns) }
        // Each GPU's violation counters (power, thermal) at each step they were read, with the
        // read's time: a share of time is of the reads' interval, not the trainer's.
        var violationMarks: [String: [[UInt64: (value: Double, at: Int64)]]] = [:]
        for mark in marks where mark.key.hasPrefix(Self.markPrefix + "hw.gpu.violation_time{") {
            guard let parsed = SeriesKey(parsing: mark.key) else { continue }
            let columns = mark.columns
            violationMarks[Self.gpu(parsed), default: []].append(Dictionary(
                (0..<columns.count).map { (columns.steps[$0], (columns.values[$0], wallclockNanoseconds(columns.wallclocks[$0]))) },
                uniquingKeysWith: { first, _ in first }))
        }
        // The first time each step was logged, in step order.
        var first: [UInt64: Int64] = [:]
        for index in 0..<clock.count {
            let time = wallclockNanoseconds(clock.wallclocks[index])
            first[clock.steps[index]] = min(first[clock.steps[index]] ?? .max, time)
        }
        let stepsLogged = first.sorted { $0.key < $1.key }
        var sources: [Source: [Timeline]] = [:]
        // Each GPU's slowdown reasons, and those no violation counter counts.
        var slowdowns: [String: [Timeline]] = [:]
        var hardwareSlowdowns: [String: [Timeline]] = [:]
        for (key, columns) in series {
            guard let parsed = SeriesKey(parsing: key), let source = Source(parsed) else { continue }
            let timeline = Timeline(columns)
            guard source == .slowdown else {
                sources[source, default: []].append(timeline)
                continue
            }
            slowdowns[Self.gpu(parsed), default: []].append(timeline)
            if parsed.labels.contains(where: { $0.name == "reason" && Self.hardwareSlowdowns.contains($0.value) }) {
                hardwareSlowdowns[Self.gpu(parsed), default: []].append(timeline)
            }
        }
        // Made once, not a step at a time: a day of ticks of many series would be merged again
        // for each of thousands of steps. Whether any reason held each GPU's clocks.
        let held = slowdowns.mapValues(Timeline.union)
        let hardwareHeld = hardwareSlowdowns.mapValues(Timeline.union)
        let memory = Timeline.sum(sources[.processMemory] ?? [])
        let treeCPU = (sources[.treeCPU] ?? []).isEmpty ? nil : Timeline.sum(sources[.treeCPU] ?? [])  // every rank's tree
        // The steps every GPU's energy was read at, by their place in `stepsLogged`.
        let marked = energyMarks.isEmpty ? [] : stepsLogged.indices.filter { index in
            energyMarks.allSatisfy { $0[stepsLogged[index].key] != nil }
        }
        // The energy the counters rose by between the marks around the step at `index` (the last
        // at or before its start, the first at or after its end), shared out between the span's
        // steps, by the place of each; the spans by their first mark. Each step's share is its
        // weight over the span's steps' sum of them: its energy from the power ticks of the GPUs
        // whose ticks cover every step of the span, or its time where none do, so that the shares
        // add up to the counters' figure.
        var spans: [Int: [Int: Double]] = [:]
        var after = 0  // the first of `marked` past the step's start: the steps go in order
        func share(of index: Int) -> Double? {
            while after < marked.count && marked[after] <= index { after += 1 }
            guard after > 0, after < marked.count else { return nil }
            let (a, b) = (marked[after - 1], marked[after])
            if let known = spans[a] { return known[index] }
            let differences = energyMarks.compactMap { marks in marks[stepsLogged[b].key].flatMap { end in marks[stepsLogged[a].key].map { end - $0 } } }
            // A counter that went back (a driver reloaded) says nothing of the span.
            guard differences.count == energyMarks.count, differences.allSatisfy({ $0 >= 0 }) else { return nil }
            // The span's steps: those logged in time order (the others have no interval).
            let intervals = (a..<b).map { (index: $0, start: stepsLogged[$0].value, end: stepsLogged[$0 + 1].value) }.filter { $0.end > $0.start }
            let covering = (sources[.power] ?? []).filter { timeline in intervals.allSatisfy { timeline.integral($0.start, $0.end) != nil } }
            var weights = intervals.map { interval in covering.reduce(0) { $0 + ($1.integral(interval.start, interval.end) ?? 0) } }
            if covering.isEmpty || weights.reduce(0, +) <= 0 {
                weights = intervals.map { Self.seconds(from: $0.start, to: $0.end) }
            }
            let (joules, total) = (differences.reduce(0, +), weights.reduce(0, +))
            spans[a] = Dictionary(uniqueKeysWithValues: zip(intervals, weights).map { ($0.index, joules * $1 / total) })
            return spans[a]?[index]
        }
        var exact = 0
        var exactThrottle = 0
        steps = stepsLogged.indices.dropLast().compactMap { index in
            let (from, to) = (stepsLogged[index], stepsLogged[index + 1])
            guard to.value > from.value else { return nil }  // logged out of time order: no interval
            let (start, end) = (from.value, to.value)
            let seconds = Self.seconds(from: start, to: end)
            func mean(_ source: Source) -> Double? {
                let means = (sources[source] ?? []).compactMap { $0.integral(start, end).map { $0 / seconds } }
                return means.isEmpty ? nil : means.reduce(0, +) / Double(means.count)
            }
            var power = (sources[.power] ?? []).compactMap { $0.integral(start, end) }
            // Read at both ends, by every GPU: exact (a counter that went back, a driver reloaded,
            // is not).
            let read = energyMarks.compactMap { marks in marks[to.key].flatMap { end in marks[from.key].map { end - $0 } } }
            if !energyMarks.isEmpty && read.count == energyMarks.count && read.allSatisfy({ $0 >= 0 }) {
                power = read
                exact += 1
            } else if let share = share(of: index) {
                // Between two marks (a fast trainer's steps mostly are: the reads are paced).
                power = [share]
            }
            // Each GPU's share of the step its clocks were held, from the ticks; the GPU held
            // longest is the step's.
            func shares(_ timelines: [String: Timeline]) -> [String: Double] {
                timelines.compactMapValues { $0.integral(start, end).map { min(1, $0 / seconds) } }
            }
            let ticked = shares(held)
            var throttled = ticked.values.max()
            // Read at both ends, by every GPU that has the counters: its power and thermal time
            // added (they seldom overlap) over the reads' own interval, or a hardware slowdown's
            // ticks where longer; a GPU without the counters, its ticks.
            var counted: [String: Double] = [:]
            for (gpu, counters) in violationMarks {
                let differences = counters.compactMap { marks -> (held: Double, apart: Double)? in
                    guard let begin = marks[from.key], let end = marks[to.key], end.at > begin.at, end.value >= begin.value else { return nil }
                    // Seconds without a trap: a client may log a mark's key with any wallclock.
                    return (end.value - begin.value, Self.seconds(from: begin.at, to: end.at))
                }
                guard differences.count == counters.count, let apart = differences.map(\.apart).max() else { continue }
                counted[gpu] = min(1, differences.map(\.held).reduce(0, +) / apart)
            }
            if !violationMarks.isEmpty && counted.count == violationMarks.count {
                let hardware = shares(hardwareHeld)
                let each = Set(counted.keys).union(ticked.keys).compactMap { gpu in
                    counted[gpu].map { max($0, hardware[gpu] ?? 0) } ?? ticked[gpu]
                }
                throttled = each.max()
                if ticked.keys.allSatisfy({ counted[$0] != nil }) { exactThrottle += 1 }
            }
            return StepCost(
                step: to.key, start: start, end: end, energyJoules: power.isEmpty ? nil : power.reduce(0, +),
                gpuUtilization: mean(.utilization), throttled: throttled,
                gpuMemoryPeakBytes: memory.peak(start, end), iowait: mean(.iowait),
                cpu: treeCPU?.integral(start, end).map { $0 / seconds })
        }
        // Energy and throttling are interpolated unless every step's came from marks.
        let read = steps.isEmpty ? [] : (exact == steps.count ? ["energy_joules"] : []) + (exactThrottle == steps.count ? ["throttled"] : [])
        interpolated = Self.columns.filter { !read.contains($0) }
    }

    /// Seconds between two times in ns: exact where the difference fits (wallclocks near 2^61
    /// lose 256 ns as doubles), and no trap where it does not (a wallclock clamped at Int64.min).
    static func seconds(from start: Int64, to end: Int64) -> Double {
        let (difference, overflow) = end.subtractingReportingOverflow(start)
        return overflow ? (Double(end) - Double(start)) / 1e9 : Double(difference) / 1e9
    }

    /// Joules per step, over the steps whose energy is known.
    public var joulesPerStep: Double? {
        let known = steps.compactMap(\.energyJoules)
        return known.isEmpty ? nil : known.reduce(0, +) / Double(known.count)
    }

    /// Steps per kilowatt-hour (3.6 MJ).
    public var stepsPerKilowattHour: Double? {
        joulesPerStep.flatMap { $0 > 0 ? 3_600_000 / $0 : nil }
    }

    /// The share of the steps' time the GPUs were slowed down (each step's GPU held longest).
    public var throttledShare: Double? {
        let known = steps.filter { $0.throttled != nil }
        let seconds = known.reduce(0) { $0 + $1.seconds }
        return seconds > 0 ? known.reduce(0) { $0 + $1.throttled! * $1.seconds } / seconds : nil
    }

    /// A GPU's series' labels without the reason: the same for its clocks-event ticks and its
    /// violation counters, and for two GPUs of one index on two hosts, not the same.
    static func gpu(_ key: SeriesKey) -> String {
        key.labels.filter { $0.name != "reason" }.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
    }

    /// Reasons that slow a GPU down which NVML's violation counters (power, thermal) do not count.
    public static let hardwareSlowdowns: Set<String> = ["hw_slowdown", "hw_power_brake_slowdown"]

    /// Which cost a machine series feeds.
    enum Source: Hashable {
        case power, utilization, slowdown, processMemory, iowait, treeCPU

        init?(_ key: SeriesKey) {
            let labels = Dictionary(key.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
            switch key.name {
            case "hw.power" where labels["index"] != nil: self = .power
            case "hw.gpu.utilization" where labels["hw.gpu.task"] == nil: self = .utilization
            case "hw.gpu.clocks_event" where labels["reason"].map(StepCosts.slowdowns.contains) == true: self = .slowdown
            case "hw.gpu.process.memory.usage": self = .processMemory
            case "system.cpu.utilization" where labels["cpu.mode"] == "iowait" && labels["cpu.logical_number"] == nil: self = .iowait
            case "process.cpu.utilization": self = .treeCPU
            default: return nil
            }
        }
    }
}

/// A series as a function of time: each tick's value holds over the time since the tick before
/// (the first one's, and one after a gap of more than twice the usual interval, a detach or a
/// restart, over one usual interval).
struct Timeline {
    var times: [Int64] = []
    var values: [Double] = []
    /// The median time between ticks.
    private var usual: Int64 = 0

    init(times: [Int64] = [], values: [Double] = []) {
        self.times = times
        self.values = values
        usual = Self.median(times)
    }

    init(_ columns: MetricColumns) {
        let order = (0..<columns.count).filter { columns.nonFloat[$0] == nil && columns.values[$0].isFinite }
            .sorted { columns.wallclocks[$0] < columns.wallclocks[$1] }
        self.init(times: order.map { wallclockNanoseconds(columns.wallclocks[$0]) }, values: order.map { columns.values[$0] })
    }

    private static func median(_ times: [Int64]) -> Int64 {
        guard times.count > 1 else { return 0 }
        let gaps = zip(times, times.dropFirst()).map { $1 &- $0 }.sorted()
        return gaps[gaps.count / 2]
    }

    /// Where tick `index`'s value begins to hold.
    private func begins(_ index: Int) -> Int64 {
        let earliest = times[index] &- usual
        return index > 0 ? max(times[index - 1], earliest) : earliest
    }

    /// ∫ value dt over [start, end], in value·seconds; nil where the ticks do not cover it all.
    func integral(_ start: Int64, _ end: Int64) -> Double? {
        guard let last = times.last, times.count > 1, begins(0) <= start, last >= end else { return nil }
        var total = 0.0
        var covered = 0.0
        // The first tick whose time reaches past start.
        var index = firstIndex(after: start)
        while index < times.count {
            let from = max(start, begins(index))
            let to = min(end, times[index])
            if to > from {
                total += values[index] * StepCosts.seconds(from: from, to: to)
                covered += StepCosts.seconds(from: from, to: to)
            }
            if times[index] >= end { break }
            index += 1
        }
        // A gap in the ticks (a detach) inside the interval: not known.
        return covered >= StepCosts.seconds(from: start, to: end) * 0.999 ? total : nil
    }

    /// The most a value held at any time of [start, end]; nil where no tick covers it.
    func peak(_ start: Int64, _ end: Int64) -> Double? {
        guard let last = times.last, begins(0) <= end, last >= start else { return nil }
        // The ticks whose time (since the tick before) reaches into the interval.
        var index = firstIndex(after: start)
        var most = values[index]
        index += 1
        while index < times.count, begins(index) < end {
            most = max(most, values[index])
            index += 1
        }
        return most
    }

    /// The first tick at or after `time`.
    private func firstIndex(after time: Int64) -> Int {
        var (low, high) = (0, times.count)
        while low < high {
            let middle = (low + high) / 2
            if times[middle] < time { low = middle + 1 } else { high = middle }
        }
        return min(low, times.count - 1)
    }

    /// 1 where any of the timelines is above 0, else 0, at each of their times.
    static func union(_ timelines: [Timeline]) -> Timeline {
        combine(timelines) { $0.contains { $0 > 0 } ? 1 : 0 }
    }

    /// The timelines' values added up at each of their times (processes that come and go: a
    /// missing one adds nothing).
    static func sum(_ timelines: [Timeline]) -> Timeline {
        combine(timelines) { $0.reduce(0, +) }
    }

    /// Every tick time of any timeline, with `merge` of what each holds then: one pass, a cursor
    /// a timeline.
    private static func combine(_ timelines: [Timeline], _ merge: ([Double]) -> Double) -> Timeline {
        guard timelines.count > 1 else { return timelines.first ?? Timeline() }
        var times = timelines.flatMap(\.times)
        times.sort()
        var unique: [Int64] = []
        unique.reserveCapacity(times.count)
        for time in times where unique.last != time { unique.append(time) }
        var cursors = [Int](repeating: 0, count: timelines.count)
        var held: [Double] = []
        let values = unique.map { time -> Double in
            held.removeAll(keepingCapacity: true)
            for (position, timeline) in timelines.enumerated() {
                // The first tick of this timeline at or after `time` holds then, if it began by then.
                while cursors[position] < timeline.times.count && timeline.times[cursors[position]] < time { cursors[position] += 1 }
                let index = cursors[position]
                if index < timeline.times.count && timeline.begins(index) <= time { held.append(timeline.values[index]) }
            }
            return merge(held)
        }
        return Timeline(times: unique, values: values)
    }
}

extension StepCosts {
    /// The costs of an experiment's steps, its series read through `fetch` (the series of the keys
    /// given, within a range of steps, or whole): the key marking the steps (`key`, else its own
    /// with the most points), the marks read as its steps began, and the machine's series the
    /// costs come from, only over the time of its steps (their steps are the sampler's Unix
    /// milliseconds), not its whole history.
    public static func read(
        experimentID: String, key: String?, keys: [String],
        fetch: (_ keys: [String], _ steps: ClosedRange<UInt64>?) async throws -> [(key: String, columns: MetricColumns)]
    ) async throws -> StepCosts {
        let own = keys.filter { !$0.hasPrefix("system/") }
        let clock: (key: String, columns: MetricColumns)
        if let key {
            guard own.contains(key) else {
                throw NotFoundError("\(experimentID) has no metric \(key) of its own" + (own.isEmpty ? "" : " (it has \(own.prefix(8).joined(separator: ", ")))"))
            }
            clock = (key, try await fetch([key], nil).first { $0.key == key }?.columns ?? MetricColumns())
        } else {
            let series = own.isEmpty ? [] : try await fetch(own, nil)
            guard let chosen = stepKey(series), let columns = series.first(where: { $0.key == chosen })?.columns else {
                throw NotFoundError("\(experimentID) has no metric of its own to mark its steps")
            }
            clock = (chosen, columns)
        }
        let times = clock.columns.wallclocks.map(wallclockNanoseconds)
        guard let first = times.min(), let last = times.max() else {
            return StepCosts(key: clock.key, clock: clock.columns, series: [])
        }
        // A minute around the steps: the ticks that cover their ends.
        let margin: Int64 = 60_000
        let milliseconds = UInt64(clamping: max(0, first / 1_000_000 - margin))...UInt64(clamping: max(0, last / 1_000_000 + margin))
        let machine = machineKeys(keys)
        let marks = keys.filter { $0.hasPrefix(markPrefix) }
        return StepCosts(
            key: clock.key, clock: clock.columns, series: machine.isEmpty ? [] : try await fetch(machine, milliseconds),
            marks: marks.isEmpty ? [] : try await fetch(marks, nil))
    }
}
