import ArgumentParser
import BoxcarModel
import FoundationEssentials

/// `boxcar steps`: what each of an experiment's training steps cost the machine (StepCosts in
/// BoxcarModel; the agent answers the same as boxcar.v1 QueryStepCosts).
struct StepsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "steps",
        abstract: "Say what each of an experiment's training steps cost the machine.",
        discussion: """
            For each interval between the trainer's consecutive logged steps (of --key, else of \
            its key with the most points): its seconds, the GPUs' energy (J), their mean \
            utilization, the share of it a power, thermal or hardware slowdown held their clocks, \
            the trainer's peak GPU memory, the machine's CPU iowait and the trainer tree's CPU, \
            from the machine's series of the windows it was attached. Then joules a step, steps \
            a kWh and the share of the time throttled. The output says which columns are \
            interpolated from the sampler's ticks. A cost the series do not cover is empty.

            Example: boxcar steps $RUN --key loss --csv > steps.csv
            """)

    @Argument(help: "The experiment id.")
    var experiment: String

    @Option(help: "The trainer's key whose points mark its steps. Default: its own key with the most points.")
    var key: String?

    @Flag(help: "Print CSV (a row a step) instead of a table.")
    var csv = false

    @OptionGroup var source: SourceOptions

    func validate() throws {
        if csv && source.json { throw ArgumentParser.ValidationError("give --csv or --json, not both") }
    }

    func run() async throws {
        let costs = try await source.withSource { source in
            let keys = try await source.metricKeys(parentID: experiment)
            return try await StepCosts.read(experimentID: experiment, key: key, keys: keys) { keys, steps in
                try await source.metrics(parentID: experiment, keys: keys, steps: steps)
            }
        }
        if source.json {
            print(try encodeJSON(StepCostsOutput(costs)))
        } else if csv {
            print((["step", "start", "end", "seconds"] + StepCosts.columns).joined(separator: ","))
            for step in costs.steps {
                print(([String(step.step), String(step.start), String(step.end), "\(step.seconds)"]
                    + Self.values(step).map { $0.map { "\($0)" } ?? "" }).joined(separator: ","))
            }
        } else {
            let rows = costs.steps.map { step in
                [String(step.step), Format.fixed(step.seconds, 3), step.energyJoules.map { Format.fixed($0, 1) } ?? "",
                 step.gpuUtilization.map { Format.percent($0) } ?? "", step.throttled.map { Format.percent($0) } ?? "",
                 step.gpuMemoryPeakBytes.map(Format.bytes) ?? "", step.iowait.map { Format.percent($0) } ?? "",
                 step.cpu.map { Format.percent($0) } ?? ""]
            }
            print(table(["STEP", "SECONDS", "ENERGY_J", "GPU_UTIL", "THROTTLED", "GPU_MEM_PEAK", "IOWAIT", "CPU"], rows))
            print(Self.summary(costs))
        }
    }

    static func values(_ step: StepCosts.StepCost) -> [Double?] {
        [step.energyJoules, step.gpuUtilization, step.throttled, step.gpuMemoryPeakBytes, step.iowait, step.cpu]
    }

    /// The line under the table: what a step cost on the whole.
    static func summary(_ costs: StepCosts) -> String {
        var parts = ["\(costs.steps.count) steps of \(costs.key)"]
        if let joules = costs.joulesPerStep { parts.append(Format.fixed(joules, 1) + " J a step") }
        if let steps = costs.stepsPerKilowattHour { parts.append(Format.fixed(steps, 0) + " steps a kWh") }
        if let throttled = costs.throttledShare { parts.append("throttled " + Format.percent(throttled) + " of the time") }
        return parts.joined(separator: ", ") + "; interpolated from the sampler's ticks: " + costs.interpolated.joined(separator: ", ")
    }
}

/// `boxcar steps --json`: the steps, which columns are interpolated, and the summary.
struct StepCostsOutput: Encodable {
    var key: String
    var interpolated: [String]
    var steps: [Step]
    var joulesPerStep, stepsPerKilowattHour, throttledShare: Double?

    struct Step: Encodable {
        var step: UInt64
        var start, end: Int64
        var seconds: Double
        var energyJoules, gpuUtilization, throttled, gpuMemoryPeakBytes, iowait, cpu: Double?

        enum CodingKeys: String, CodingKey {
            case step, start, end, seconds, throttled, iowait, cpu
            case energyJoules = "energy_joules", gpuUtilization = "gpu_utilization", gpuMemoryPeakBytes = "gpu_memory_peak_bytes"
        }
    }

    enum CodingKeys: String, CodingKey {
        case key, interpolated, steps
        case joulesPerStep = "joules_per_step", stepsPerKilowattHour = "steps_per_kilowatt_hour", throttledShare = "throttled_share"
    }

    init(_ costs: StepCosts) {
        key = costs.key
        interpolated = costs.interpolated
        steps = costs.steps.map {
            Step(step: $0.step, start: $0.start, end: $0.end, seconds: $0.seconds, energyJoules: $0.energyJoules,
                 gpuUtilization: $0.gpuUtilization, throttled: $0.throttled, gpuMemoryPeakBytes: $0.gpuMemoryPeakBytes,
                 iowait: $0.iowait, cpu: $0.cpu)
        }
        joulesPerStep = costs.joulesPerStep
        stepsPerKilowattHour = costs.stepsPerKilowattHour
        throttledShare = costs.throttledShare
    }
}
