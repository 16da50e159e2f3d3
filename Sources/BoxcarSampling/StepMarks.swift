import BoxcarModel
import BoxcarSensors
import BoxcarStore
import Logging
import NIOPosix
import Synchronization

/// The GPUs' energy and violation-time counters read when an attached trainer's step begins (the
/// first batch with a point at a step above the last arrives), so that what a step used, and how
/// long power or thermal limits held its clocks, is the difference of two reads, where ticks a
/// second apart can only be interpolated (StepCosts). Exact to the time between a step's first
/// point and its read (a batch's trip to the agent, a thread hop), and to the counters' own
/// resolution; steps the SDK ships in one batch share a read.
///
/// Stored under the experiment as `system/step/hw.energy{…}` and
/// `system/step/hw.gpu.violation_time{…,reason}` at the trainer's step. Reads are
/// made on a thread of their own (NVML may hang; the sampler must not wait for it), one at a
/// time, and paced to a share of a core: a real driver's counters are not cheap (on an H200,
/// driver 580, the energy counter took 3 ms of CPU a read and each violation counter 0.7 ms:
/// `Scripts/gpu-check/costs.py`), and a trainer logging 30 steps a second had the agent spend 15 %
/// of a core on marks alone. A step that begins while a read is made, or before `c / share` has
/// passed since a read that took `c` of CPU began, has no mark rather than a late one: the marks
/// there are stay exact, and StepCosts takes the steps without a mark at both ends from the ticks.
public final class StepMarks: Sendable {
    let store: Store
    let nvidia: NVIDIAGPUSensor
    let logger: Logger
    private let thread = NIOThreadPool(numberOfThreads: 1)
    let state = Mutex(State())
    let share: Double

    struct State {
        /// The experiments attached now (as the sampler last read them).
        var attached: Set<String> = []
        /// The highest step each has begun.
        var highest: [String: UInt64] = [:]
        /// Whether a read is under way.
        var reading = false
        /// When the next read may begin.
        var notBefore = ContinuousClock.now
    }

    public static let prefix = StepCosts.markPrefix

    /// `share`: the most of a core the reads take.
    public init(store: Store, nvidia: NVIDIAGPUSensor, logger: Logger, share: Double = 0.01) {
        precondition(share > 0, "a share of a core above 0")
        self.store = store
        self.nvidia = nvidia
        self.logger = logger
        self.share = share
        thread.start()
    }

    deinit {
        thread.shutdownGracefully { _ in }
    }

    /// The experiments attached now; one no longer attached forgets its steps.
    func attached(_ experiments: Set<String>) {
        state.withLock { state in
            state.attached = experiments
            state.highest = state.highest.filter { experiments.contains($0.key) }
        }
    }

    /// Points of `experimentID` arrived at `steps`: a step above its highest begins a step.
    /// Cheap for an experiment not attached (one look under a lock).
    public func arrived(experimentID: String, steps: [UInt64]) {
        guard state.withLock({ $0.attached.contains(experimentID) }), let top = steps.max() else { return }
        let start = state.withLock { state -> Bool in
            if let highest = state.highest[experimentID], top <= highest { return false }
            state.highest[experimentID] = top
            guard !state.reading && ContinuousClock.now >= state.notBefore else { return false }
            state.reading = true
            return true
        }
        if start { Task { await read(experimentID: experimentID, step: top) } }
    }

    /// Reads the counters once and stores them as the mark of `step`.
    private func read(experimentID: String, step: UInt64) async {
        defer { state.withLock { $0.reading = false } }
        let nvidia = self.nvidia
        let began = ContinuousClock.now  // the pacing counts from here, the hop to the thread included
        // The mark is stamped where it is read, not before the hop to the thread.
        let read = try? await thread.runIfActive { () -> (wallclock: Nanoseconds, readings: [Reading], cpu: Double) in
            let cpu = threadCPUSeconds()
            return (WallClock.now(), nvidia.stepCounters(), threadCPUSeconds() - cpu)
        }
        state.withLock { $0.notBefore = began + .seconds((read?.cpu ?? 0) / share) }
        guard let (wallclock, readings, _) = read, !readings.isEmpty else { return }
        let keys = readings.map { Self.prefix + $0.seriesKey.dropFirst("system/".count) }
        do {
            try await store.appendTicks([
                Store.Tick(parentID: experimentID, step: step, wallclock: wallclock, keys: keys, values: readings.map(\.value))
            ])
        } catch {
            logger.debug("a step's counters could not be stored", metadata: ["error": "\(error)"])
        }
    }
}
