@testable import BoxcarSampling
import BoxcarSensors
import BoxcarTestSupport
import Foundation
import Logging
import Testing

/// The GPU counters that cost milliseconds a read (energy, violation time) are read and stored
/// at every `slowEvery`-th tick only, while the exporter's page shows their last read's on every
/// tick; the cheap metrics are read each tick.
@Suite struct SlowCountersTests {
    let directory = TemporaryDirectory()

    @Test func slowCountersAreStoredEveryNthTickAndShownOnEvery() throws {
        let library = directory.file("libnvidia-ml.so.1")
        try FileManager.default.copyItem(atPath: fakeNVMLLibrary, toPath: library)
        try "gpus 1\n0 energy 5000000\n0 power 300000\n0 violation.power 500000000\n"
            .write(toFile: library + ".script", atomically: true, encoding: .utf8)
        let nvidia = try NVIDIAGPUSensor(library: try NVMLLibrary.load(path: library), slowEvery: 3)
        let set = SensorSet(sensors: [], processes: ProcessTreeSensor(procRoot: directory.path), nvidia: nvidia)
        set.keepsLatest = true
        var stored: [[String]] = []
        for tick in 0..<6 {
            let (readings, _, _, _) = set.sample(elapsed: tick == 0 ? nil : .seconds(1), roots: [], logger: Logger(label: "test"))
            let names = Set(readings.map(\.reading.name))
            stored.append(["hw.energy", "hw.gpu.violation_time.rate"].filter(names.contains))
            #expect(names.contains("hw.power"), "tick \(tick)")
            let shown = Set(set.view().host.map(\.name))
            #expect(shown.isSuperset(of: ["hw.energy", "hw.gpu.violation_time.rate", "hw.power"]), "tick \(tick)")
        }
        let slow = ["hw.energy", "hw.gpu.violation_time.rate"]
        #expect(stored == [slow, [], [], slow, [], []])
    }
}
