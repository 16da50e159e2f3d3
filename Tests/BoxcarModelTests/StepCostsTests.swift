@testable import BoxcarModel
import Testing

/// A step's costs from the machine's ticks: energy integrated, shares averaged over exactly the
/// step's time, a step shorter than a tick given the tick around it.
@Suite struct StepCostsTests {
    static let second: Int64 = 1_000_000_000
    static let t0: Int64 = 1_764_756_000 * second

    /// One value a second from t0 + 1 s to t0 + `seconds` s, `value(n)` at the n-th.
    static func ticks(_ seconds: Int, _ value: (Int) -> Double) -> MetricColumns {
        var columns = MetricColumns()
        for n in 1...seconds { columns.append(step: UInt64(n), wallclock: t0 + Int64(n) * second, value: value(n)) }
        return columns
    }

    static func gpu(_ index: Int) -> String { #"hw.id="GPU-\#(index)",hw.model="H200",hw.vendor="nvidia",index="\#(index)""# }

    static let machine: [(key: String, columns: MetricColumns)] = [
        ("system/hw.power{\(gpu(0)),hw.type=\"gpu\"}", ticks(20) { _ in 300 }),
        ("system/hw.power{\(gpu(1)),hw.type=\"gpu\"}", ticks(20) { _ in 100 }),
        ("system/hw.gpu.utilization{\(gpu(0))}", ticks(20) { $0 <= 10 ? 1 : 0.5 }),
        ("system/hw.gpu.utilization{\(gpu(1))}", ticks(20) { _ in 0.5 }),
        ("system/hw.gpu.utilization{\(gpu(0)),hw.gpu.task=\"encoder\"}", ticks(20) { _ in 0.9 }),  // not a kernel's
        // The power cap holds GPU 0's clocks over (4 s, 6 s]; gpu_idle is no slowdown.
        ("system/hw.gpu.clocks_event{\(gpu(0)),reason=\"sw_power_cap\"}", ticks(20) { $0 == 5 || $0 == 6 ? 1 : 0 }),
        ("system/hw.gpu.clocks_event{\(gpu(1)),reason=\"gpu_idle\"}", ticks(20) { _ in 1 }),
        ("system/hw.gpu.process.memory.usage{\(gpu(0)),process.pid=\"41\"}", ticks(20) { $0 == 7 ? 9e9 : 4e9 }),
        ("system/hw.gpu.process.memory.usage{\(gpu(1)),process.pid=\"42\"}", ticks(20) { _ in 2e9 }),
        (#"system/system.cpu.utilization{cpu.mode="iowait"}"#, ticks(20) { _ in 0.02 }),
        (#"system/system.cpu.utilization{cpu.logical_number="0",cpu.mode="iowait"}"#, ticks(20) { _ in 0.5 }),
        (#"system/process.cpu.utilization{process.pid="41"}"#, ticks(20) { _ in 0.25 }),
    ]

    /// The trainer logged its steps at these seconds after t0.
    static func clock(_ seconds: [Double]) -> MetricColumns {
        var columns = MetricColumns()
        for (step, at) in seconds.enumerated() {
            columns.append(step: UInt64(step), wallclock: t0 + Int64(at * 1e9), value: 1)
        }
        return columns
    }

    @Test func costsOfStepsLongerAndShorterThanATick() throws {
        let costs = StepCosts(key: "loss", clock: Self.clock([2, 4, 8, 8.25, 12]), series: Self.machine)
        #expect(costs.steps.map(\.step) == [1, 2, 3, 4])
        let (first, second, short, last) = (costs.steps[0], costs.steps[1], costs.steps[2], costs.steps[3])
        #expect(first.seconds == 2 && first.energyJoules == 800)  // 400 W for 2 s
        #expect(short.seconds == 0.25 && short.energyJoules == 100)
        // GPU 0 busy until 10 s then half, GPU 1 half: the last step, 8.25 s to 12 s.
        let lastUtilization: Double = ((1.75 + 1.0) / 3.75 + 0.5) / 2
        #expect(first.gpuUtilization == 0.75)
        #expect(abs(last.gpuUtilization! - lastUtilization) < 1e-12)
        #expect(first.throttled == 0 && second.throttled == 0.5 && short.throttled == 0)
        #expect(second.gpuMemoryPeakBytes == 11e9 && first.gpuMemoryPeakBytes == 6e9)  // 9 GB at 7 s, with the 2 GB of GPU 1
        #expect(first.iowait! == 0.02 && first.cpu == 0.25)
        #expect(costs.interpolated == StepCosts.columns)
        #expect(costs.joulesPerStep == Double(800 + 1600 + 100 + 1500) / 4)
        #expect(costs.stepsPerKilowattHour == 3600.0)
        #expect(abs(costs.throttledShare! - 2 / 10.0) < 1e-12)  // 2 s of the 10 s
    }

    @Test func energyReadAtTheStepsIsExactAndTheRestInterpolated() {
        // Each GPU's counter read at steps 0-3 (not at 4: a read that was coalesced away).
        func marks(_ joules: [Double]) -> MetricColumns {
            var columns = MetricColumns()
            for (step, value) in joules.enumerated() { columns.append(step: UInt64(step), wallclock: Self.t0, value: value) }
            return columns
        }
        let read: [(key: String, columns: MetricColumns)] = [
            ("system/step/hw.energy{\(Self.gpu(0)),hw.type=\"gpu\"}", marks([1000, 1500, 1510, 2000])),
            ("system/step/hw.energy{\(Self.gpu(1)),hw.type=\"gpu\"}", marks([50, 60, 60, 10])),  // reset after step 2
        ]
        let costs = StepCosts(key: "loss", clock: Self.clock([2, 4, 8, 8.25, 12]), series: Self.machine, marks: read)
        #expect(costs.steps.map(\.energyJoules) == [510, 10, 100, 1500])  // read, read, interpolated (reset), interpolated (no mark)
        #expect(costs.interpolated == StepCosts.columns)
        let allRead = StepCosts(key: "loss", clock: Self.clock([2, 4, 8]), series: Self.machine, marks: read)
        #expect(allRead.steps.map(\.energyJoules) == [510, 10])
        #expect(allRead.interpolated == StepCosts.columns.filter { $0 != "energy_joules" })
    }

    @Test func stepsBetweenTwoMarksShareTheirExactEnergyAsTheTicksWeighIt() {
        // The counter read at steps 0 and 3 only (the reads are paced), and it rose 2950 J
        // between them, where the ticks give 1475 J: 100 W until 4 s, 300 W after.
        var read = MetricColumns()
        read.append(step: 0, wallclock: Self.t0, value: 10_000)
        read.append(step: 3, wallclock: Self.t0, value: 12_950)
        let marks = [(key: "system/step/hw.energy{\(Self.gpu(0)),hw.type=\"gpu\"}", columns: read)]
        let power = [(key: "system/hw.power{\(Self.gpu(0)),hw.type=\"gpu\"}", columns: Self.ticks(20) { $0 <= 4 ? 100 : 300 })]
        let clock = Self.clock([2, 4, 8, 8.25, 12])
        let weighed = StepCosts(key: "loss", clock: clock, series: power, marks: marks)
        // Steps 1-3 twice what the ticks give them (200, 1200 and 75 J); step 4, past the last
        // mark, the ticks' own (3.75 s at 300 W).
        #expect(weighed.steps.map(\.energyJoules) == [400, 2400, 150, 1125])
        #expect(weighed.interpolated.contains("energy_joules"))
        // Without ticks of power, by time: 2, 4 and 0.25 of the span's 6.25 s; step 4 has none.
        let timed = StepCosts(key: "loss", clock: clock, series: [], marks: marks)
        #expect(timed.steps.map(\.energyJoules) == [944, 1888, 118, nil])
        // Two GPUs, the second's ticks missing from 4 s to 7 s: the shares are weighed by the
        // first's ticks alone (the GPUs that cover every step of the span), and still add up to
        // the counters' 2950 + 1000 J.
        var second = MetricColumns()
        second.append(step: 0, wallclock: Self.t0, value: 0)
        second.append(step: 3, wallclock: Self.t0, value: 1000)
        var gapped = MetricColumns()
        for n in 1...20 where !(5...7).contains(n) { gapped.append(step: UInt64(n), wallclock: Self.t0 + Int64(n) * Self.second, value: 50) }
        let two = StepCosts(
            key: "loss", clock: clock, series: power + [("system/hw.power{\(Self.gpu(1)),hw.type=\"gpu\"}", gapped)],
            marks: marks + [("system/step/hw.energy{\(Self.gpu(1)),hw.type=\"gpu\"}", second)])
        let shared = two.steps.prefix(3).map { $0.energyJoules! }
        #expect(abs(shared.reduce(0, +) - 3950) < 1e-9)
        #expect(abs(shared[1] / shared[0] - 6) < 1e-12 && abs(shared[2] / shared[0] - 0.375) < 1e-12)
        // A counter that went back between the marks (a driver reloaded): the ticks' own.
        var reset = read
        reset.values[1] = 5
        let fallback = StepCosts(key: "loss", clock: clock, series: power, marks: [(marks[0].key, reset)])
        #expect(fallback.steps.map(\.energyJoules) == [200, 1200, 75, 1125])
    }

    @Test func throttlingReadAtTheStepsIsExactAndAHardwareSlowdownStillCounts() {
        // Read at 2, 4, 8 and 12 s, as the steps began (a read's own time, not the trainer's).
        func marks(_ seconds: [Double], at times: [Double] = [2, 4, 8, 12]) -> MetricColumns {
            var columns = MetricColumns()
            for (step, value) in seconds.enumerated() {
                columns.append(step: UInt64(step), wallclock: Self.t0 + Int64(times[step] * 1e9), value: value)
            }
            return columns
        }
        // GPU 0's power cap held 0.5 s of the first step and all of the third; GPU 1's thermal
        // limit 1 s of the second, its power cap 0.5 s of it too.
        let read: [(key: String, columns: MetricColumns)] = [
            ("system/step/hw.gpu.violation_time{\(Self.gpu(0)),reason=\"power\"}", marks([10, 10.5, 10.5, 14.5])),
            ("system/step/hw.gpu.violation_time{\(Self.gpu(0)),reason=\"thermal\"}", marks([0, 0, 0, 0])),
            ("system/step/hw.gpu.violation_time{\(Self.gpu(1)),reason=\"power\"}", marks([3, 3, 3.5, 3.5])),
            ("system/step/hw.gpu.violation_time{\(Self.gpu(1)),reason=\"thermal\"}", marks([7, 7, 8, 8])),
        ]
        // The ticks say GPU 1 was held by hw_slowdown over (10 s, 12 s], which no counter counts.
        let machine = Self.machine + [("system/hw.gpu.clocks_event{\(Self.gpu(1)),reason=\"hw_slowdown\"}", Self.ticks(20) { $0 >= 11 ? 1 : 0 })]
        let costs = StepCosts(key: "loss", clock: Self.clock([2, 4, 8, 12]), series: machine, marks: read)
        // 0.5 of 2 s; GPU 1's 1.5 s of 4 s (GPU 0's none); GPU 0's 4 s of 4 s.
        #expect(costs.steps.map(\.throttled) == [0.25, 0.375, 1])
        #expect(costs.interpolated == StepCosts.columns.filter { $0 != "throttled" })
        // The share is of the reads' interval: read 1 s after the trainer's third step began,
        // GPU 0's 4 s held are all of the 4 s between its reads, not of the trainer's 4 s.
        let late = read.map { ($0.key, marks($0.columns.values, at: [2, 4, 9, 13])) }
        #expect(StepCosts(key: "loss", clock: Self.clock([2, 4, 8, 12]), series: machine, marks: late).steps.map(\.throttled) == [0.25, 0.3, 1])
        // The counters quiet: the hardware slowdown's ticks, GPU 1's half of the third step.
        let quiet = read.map { ($0.key, marks([1, 1, 1, 1])) }
        let slowed = StepCosts(key: "loss", clock: Self.clock([2, 4, 8, 12]), series: machine, marks: quiet)
        #expect(slowed.steps.map(\.throttled) == [0, 0, 0.5])
        // A GPU without a read at a step's end: that step's from the ticks (GPU 1's hardware
        // slowdown over (10 s, 12 s]), and the column interpolated.
        var partial = read
        partial[3].columns = marks([7, 7, 8])
        let some = StepCosts(key: "loss", clock: Self.clock([2, 4, 8, 12]), series: machine, marks: partial)
        #expect(some.steps.map(\.throttled) == [0.25, 0.375, 0.5])
        #expect(some.interpolated == StepCosts.columns)
        // A GPU whose ticks say it was held and that has no counters at all: its ticks count, and
        // the column is interpolated.
        let third = machine + [("system/hw.gpu.clocks_event{\(Self.gpu(2)),reason=\"sw_thermal_slowdown\"}", Self.ticks(20) { $0 <= 4 ? 1 : 0 })]
        let mixed = StepCosts(key: "loss", clock: Self.clock([2, 4, 8, 12]), series: third, marks: read)
        #expect(mixed.steps.map(\.throttled) == [1, 0.375, 1])
        #expect(mixed.interpolated == StepCosts.columns)
        // A client may log a mark's key itself, at any wallclock: read, not a trap.
        var forged = read
        forged[0].columns.wallclocks[0] = .min
        forged[1].columns.wallclocks[0] = .min
        let odd = StepCosts(key: "loss", clock: Self.clock([2, 4, 8, 12]), series: machine, marks: forged)
        #expect(odd.steps.count == 3 && odd.steps[1].throttled == 0.375)
    }

    @Test func aGPUIsItsLabelsButTheReason() throws {
        let power = try #require(SeriesKey(parsing: "system/hw.gpu.violation_time{\(Self.gpu(0)),reason=\"power\"}"))
        let ticks = try #require(SeriesKey(parsing: "system/hw.gpu.clocks_event{\(Self.gpu(0)),reason=\"sw_power_cap\"}"))
        let elsewhere = try #require(SeriesKey(parsing: #"system/hw.gpu.clocks_event{hw.id="GPU-9",index="0",reason="sw_power_cap"}"#))
        #expect(StepCosts.gpu(power) == StepCosts.gpu(ticks))
        #expect(StepCosts.gpu(elsewhere) != StepCosts.gpu(ticks))
    }

    @Test func aGapInTheTicksIsNotGuessedAndRanksAddUp() {
        // Ticks at 1-5 s and 16-20 s (detached between): the 16 s tick stands for 15-16 s only.
        var gapped = MetricColumns()
        for n in [1, 2, 3, 4, 5, 16, 17, 18, 19, 20] { gapped.append(step: UInt64(n), wallclock: Self.t0 + Int64(n) * Self.second, value: 300) }
        let series: [(key: String, columns: MetricColumns)] = [
            ("system/hw.power{\(Self.gpu(0)),hw.type=\"gpu\"}", gapped),
            (#"system/process.cpu.utilization{process.pid="41"}"#, Self.ticks(20) { _ in 0.25 }),
            (#"system/process.cpu.utilization{process.pid="42"}"#, Self.ticks(20) { _ in 0.125 }),
        ]
        let costs = StepCosts(key: "loss", clock: Self.clock([2, 4, 10, 17, 19]), series: series)
        #expect(costs.steps.map(\.energyJoules) == [600, nil, nil, 600])
        #expect(costs.steps.allSatisfy { $0.cpu == 0.375 })  // two ranks' trees: their sum
    }

    @Test func stepsOutsideTheTicksHaveNoMachineCosts() {
        let costs = StepCosts(key: "loss", clock: Self.clock([30, 31]), series: Self.machine)
        #expect(costs.steps.count == 1)
        #expect(costs.steps[0].energyJoules == nil && costs.steps[0].gpuUtilization == nil && costs.steps[0].cpu == nil)
        #expect(costs.joulesPerStep == nil && costs.stepsPerKilowattHour == nil)
    }

    @Test func theStepKeyAndTheSeriesRead() {
        var loss = MetricColumns()
        for step in 0..<5 { loss.append(step: UInt64(step), wallclock: Self.t0, value: 1) }
        #expect(StepCosts.stepKey([("acc", Self.clock([1])), ("loss", loss)] + Self.machine) == "loss")
        let read = StepCosts.machineKeys(Self.machine.map(\.key) + ["loss", "system/system.memory.usage{system.memory.state=\"used\"}"])
        #expect(read.count == Self.machine.count - 3)  // not the encoder, gpu_idle nor one CPU's iowait
    }
}
