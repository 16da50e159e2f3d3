@testable import BoxcarSampling
import BoxcarSensors
import BoxcarStore
import BoxcarTestSupport
import Logging
import Testing

/// The ticks a live view (`boxcar top`) reads are kept while one asks, not by an agent nobody
/// watches; the first call waits for the next tick.
@Suite struct LiveSnapshotTests {
    final class Steady: Sensor {
        let name = "steady"
        func sample(elapsed: Duration?) throws -> [Reading] { [Reading("steady.value", [], 7)] }
    }

    let directory = TemporaryDirectory()

    @Test func ticksAreKeptFromTheFirstCallUntilNobodyAsks() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        let sampler = Sampler(
            store: store, interval: .milliseconds(50), sensors: [Steady()], processes: ProcessTreeSensor(procRoot: directory.path),
            nvidia: nil, logger: Logger(label: "test"))
        try await sampler.tick(elapsed: nil)
        #expect(sampler.snapshot == nil, "nobody asked: nothing kept")

        let running = Task { try await sampler.run() }
        let live = try await sampler.live()
        #expect(live?.host.map(\.name) == ["steady.value"])
        #expect(live?.host.first?.value == 7)

        // A minute without a call: the next tick keeps nothing.
        sampler.liveUntil.withLock { $0 = .now - .seconds(1) }
        for _ in 0..<1000 where sampler.snapshot != nil { try await Task.sleep(for: .milliseconds(10)) }
        running.cancel()
        _ = await running.result
        #expect(sampler.snapshot == nil)
        await store.close()
    }
}
