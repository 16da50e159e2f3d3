@testable import BoxcarSampling
import BoxcarSensors
import BoxcarStore
import BoxcarTestSupport
import Foundation
import Logging
import Testing

/// The GPUs' counters are read as an attached trainer's step begins, paced to a share of a core:
/// a step that begins during a read or within its pacing window has no mark (StepCosts takes it
/// from the ticks), the first one after it has one.
@Suite struct StepMarksTests {
    let directory = TemporaryDirectory()

    /// The marks, their store, the experiment, and the fake NVML library their GPU is read through.
    func marks(share: Double) async throws -> (StepMarks, Store, String, String) {
        let library = directory.file("libnvidia-ml-\(share).so.1")
        try FileManager.default.copyItem(atPath: fakeNVMLLibrary, toPath: library)
        try "gpus 1\n0 energy 5000000\n".write(toFile: library + ".script", atomically: true, encoding: .utf8)
        let store = try Store.open(path: directory.file("boxcar-\(share).db"))
        let nvidia = try NVIDIAGPUSensor(library: try NVMLLibrary.load(path: library))
        let marks = StepMarks(store: store, nvidia: nvidia, logger: Logger(label: "test"), share: share)
        let run = try await store.createExperiment(.init(name: "run", namespace: "steps")).experiment.id
        marks.attached([run])
        return (marks, store, run, library)
    }

    /// The steps that have an energy mark, once no read is under way.
    func marked(_ marks: StepMarks, _ store: Store, _ run: String) async throws -> [UInt64] {
        for _ in 0..<3000 where marks.state.withLock({ $0.reading }) { try await Task.sleep(for: .milliseconds(10)) }
        let series = try await store.metrics(parentID: run, keys: nil, range: nil)
        return series.first { $0.key.hasPrefix(StepMarks.prefix + "hw.energy{") }.map { Array($0.columns.steps) } ?? []
    }

    @Test func stepsBegunWithinAReadsWindowHaveNoMark() async throws {
        // A billionth of a core: a read of any CPU time keeps the next off for a second or more.
        let (marks, store, run, _) = try await marks(share: 1e-9)
        marks.arrived(experimentID: run, steps: [1])
        #expect(try await marked(marks, store, run) == [1])
        marks.arrived(experimentID: run, steps: [2])
        marks.arrived(experimentID: run, steps: [3])
        #expect(!marks.state.withLock { $0.reading }, "no read begun for steps 2 and 3")
        #expect(try await marked(marks, store, run) == [1])
        await store.close()
    }

    @Test func aStepBegunDuringAReadHasNoMarkTheFirstAfterTheWindowHasOne() async throws {
        // All of a core: the window is as long as the read.
        let (marks, store, run, library) = try await marks(share: 1)
        // Step 1's read is held in the driver (the fake's energy call) until step 2 has begun.
        let handle = try #require(dlopen(library, RTLD_NOW))
        defer { dlclose(handle) }
        let hold = unsafeBitCast(try #require(dlsym(handle, "fake_nvml_hold")), to: (@convention(c) (UnsafePointer<CChar>?) -> Void).self)
        let held = unsafeBitCast(try #require(dlsym(handle, "fake_nvml_held")), to: (@convention(c) () -> Int32).self)
        hold("nvmlDeviceGetTotalEnergyConsumption")
        defer { hold(nil) }
        marks.arrived(experimentID: run, steps: [1])
        for _ in 0..<30000 where held() == 0 { try await Task.sleep(for: .milliseconds(1)) }
        #expect(held() == 1, "step 1's read is under way")
        marks.arrived(experimentID: run, steps: [2])
        hold(nil)
        #expect(try await marked(marks, store, run) == [1])
        for _ in 0..<3000 where marks.state.withLock({ ContinuousClock.now < $0.notBefore }) {
            try await Task.sleep(for: .milliseconds(1))
        }
        marks.arrived(experimentID: run, steps: [3])
        #expect(try await marked(marks, store, run) == [1, 3])
        await store.close()
    }
}
