#if canImport(Glibc)
import Glibc
#endif
@testable import BoxcarSampling
import BoxcarSensors
import BoxcarStore
import BoxcarTestSupport
import Dispatch
import Logging
import Synchronization
import Testing

/// Sensors that throw, hang or give what cannot be stored lose their own series only: the other
/// sensors, and the sampler's ticks, go on.
@Suite struct SensorFaultTests {
    final class Broken: Sensor {
        let name = "broken"
        func sample(elapsed: Duration?) throws -> [Reading] { throw SensorError("cannot parse /proc/broken") }
    }

    /// Hangs on its first call until released, as statvfs does on a dead NFS server.
    final class Hanging: Sensor, @unchecked Sendable {
        let name = "hanging"
        let release = DispatchSemaphore(value: 0)
        private let count = Mutex(0)
        var calls: Int { count.withLock { $0 } }
        func sample(elapsed: Duration?) throws -> [Reading] {
            if count.withLock({ $0 += 1; return $0 }) == 1 { release.wait() }
            return [Reading("hanging.value", [], 7)]
        }
    }

    final class Garbage: Sensor {
        let name = "garbage"
        func sample(elapsed: Duration?) throws -> [Reading] {
            [Reading("garbage.nan", [], .nan), Reading("garbage.ok", [], 2), Reading("garbage.label", [.init("model", "bad\u{1}")], 3)]
        }
    }

    final class Good: Sensor {
        let name = "good"
        var elapsedSeen: [Duration?] = []
        func sample(elapsed: Duration?) throws -> [Reading] {
            elapsedSeen.append(elapsed)
            return [Reading("good.value", [], 42)]
        }
    }

    let directory = TemporaryDirectory()
    let logger = Logger(label: "test")

    @Test func aThrowingHangingOrGarbageSensorLosesOnlyItsOwnSeries() throws {
        let hanging = Hanging()
        let set = SensorSet(
            sensors: [Broken(), hanging, Garbage(), Good()], processes: ProcessTreeSensor(procRoot: directory.path),
            nvidia: nil, deadline: .milliseconds(500))
        func keys() -> (keys: [String], took: Duration) {
            let started = ContinuousClock.now
            let readings = set.sample(elapsed: nil, roots: [], logger: logger).0
            return (readings.map(\.key).sorted(), ContinuousClock.now - started)
        }
        let first = keys()
        #expect(first.keys == ["system/garbage.ok", "system/good.value"])
        #expect(first.took < .seconds(3))  // one deadline (0.5 s) for the hung sensor, not for ever
        #expect(set.problems.keys.sorted() == ["broken", "garbage readings", "hanging"])
        #expect(set.problems["hanging"]?.contains("did not answer") == true)
        #expect(set.problems["broken"]?.contains("cannot parse /proc/broken") == true)
        // While its call has not returned, the hung sensor is not called again nor waited for: with
        // a deadline of a minute, a tick that waited for it would take a minute.
        set.deadline = .seconds(60)
        let second = keys()
        #expect(second.keys == ["system/garbage.ok", "system/good.value"])
        #expect(second.took < .seconds(30))
        #expect(hanging.calls == 1)
        // Once it returns, it is read again.
        hanging.release.signal()
        for _ in 0..<1500 where hanging.calls == 1 || set.problems["hanging"] != nil {
            usleep(20_000)
            _ = keys()
        }
        #expect(keys().keys == ["system/garbage.ok", "system/good.value", "system/hanging.value"])
        #expect(set.problems["hanging"] == nil)
    }

    @Test func theSamplerStoresTheOtherSensorsWhileOneHangs() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        let hanging = Hanging()
        let good = Good()
        let sampler = Sampler(
            store: store, interval: .seconds(1), sensors: [hanging, good],
            processes: ProcessTreeSensor(procRoot: directory.path), nvidia: nil, logger: logger,
            sensorDeadline: .milliseconds(200))
        for _ in 0..<3 { try await sampler.tick(elapsed: .seconds(1)) }
        let series = try await store.metrics(parentID: Store.hostID)
        #expect(series.map(\.key) == ["system/good.value"])
        #expect(series.first?.columns.count == 3)
        // Each sensor's rates span the time since its own last answer, not the tick's.
        #expect(good.elapsedSeen.first! == nil)
        #expect(good.elapsedSeen.dropFirst().allSatisfy { $0 != nil && $0! < .seconds(5) })
        hanging.release.signal()
        await store.close()
    }

    /// Ticks the store refuses (here, a closed one) are said once, not once a tick, and the
    /// sampler goes on reading its sensors.
    @Test func refusedTicksAreSaidOnceAndSamplingGoesOn() async throws {
        final class Counting: Sensor, Sendable {
            let name = "counting"
            let count = Mutex(0)
            var calls: Int { count.withLock { $0 } }
            func sample(elapsed: Duration?) throws -> [Reading] {
                [Reading("counting.value", [], Double(count.withLock { $0 += 1; return $0 }))]
            }
        }
        final class Lines: Sendable {
            let said = Mutex<[String]>([])
        }
        struct Capture: LogHandler {
            let lines: Lines
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .info
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: LogEvent) { lines.said.withLock { $0.append(event.message.description) } }
        }
        let lines = Lines()
        let store = try Store.open(path: directory.file("refused.db"))
        let counting = Counting()
        let sampler = Sampler(
            store: store, interval: .milliseconds(20), sensors: [counting], processes: ProcessTreeSensor(procRoot: directory.path),
            nvidia: nil, logger: Logger(label: "test") { _ in Capture(lines: lines) },
            // A loaded machine must not make the sensor late: that says so in the log too.
            sensorDeadline: .seconds(60))
        let sampling = Task { try await sampler.run() }
        func waitFor(_ what: String, _ condition: () async throws -> Bool) async throws {
            let deadline = ContinuousClock.now + .seconds(60)
            while try await !condition() {
                guard ContinuousClock.now < deadline else { throw SensorError("waited a minute for \(what)") }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        try await waitFor("three ticks stored") { try await store.metrics(parentID: Store.hostID).first?.columns.count ?? 0 >= 3 }
        #expect(lines.said.withLock { $0 }.isEmpty)
        await store.close()
        let calls = counting.calls
        try await waitFor("the sensors read five more times") { counting.calls >= calls + 5 }
        sampling.cancel()
        _ = try? await sampling.value
        #expect(lines.said.withLock { $0 } == ["a sample could not be stored; sampling goes on"])
    }

    /// Counters read beside their rates are stored only while remote write is on; the exporter's
    /// snapshot has them either way, and only an agent that keeps one pays for it.
    @Test func countersBesideRatesAreStoredOnlyForRemoteWrite() async throws {
        final class Counting: Sensor {
            let name = "counting"
            func sample(elapsed: Duration?) throws -> [Reading] {
                [Reading("counting.rate", [], 1), Reading.cumulative("counting.cumulative", [], 42)]
            }
        }
        for (storesCumulative, keepsSnapshot) in [(false, false), (false, true), (true, false)] {
            let store = try Store.open(path: directory.file("counters-\(storesCumulative)-\(keepsSnapshot).db"))
            let sampler = Sampler(
                store: store, interval: .seconds(1), sensors: [Counting()], processes: ProcessTreeSensor(procRoot: directory.path),
                nvidia: nil, logger: logger, keepsSnapshot: keepsSnapshot, storesCumulative: storesCumulative)
            try await sampler.tick(elapsed: nil)
            let keys = try await store.metrics(parentID: Store.hostID).map(\.key)
            #expect(keys == (storesCumulative ? ["system/counting.cumulative", "system/counting.rate"] : ["system/counting.rate"]))
            #expect(sampler.snapshot?.host.map(\.name).sorted() == (keepsSnapshot ? ["counting.cumulative", "counting.rate"] : nil))
            await store.close()
        }
    }

    /// A sensor whose series change from tick to tick (a disk added, labels that move, one that
    /// turns invalid): each reading is stored under its own key, whatever the last tick gave in
    /// its place (the set remembers keys by place).
    @Test func readingsThatMoveOrChangeKeepTheirOwnKeys() {
        final class Moving: Sensor {
            let name = "moving"
            var ticks: [[Reading]] = [
                [Reading("m.a", [.init("disk", "sda")], 1), Reading("m.b", [], 2)],
                [Reading("m.b", [], 3), Reading("m.a", [.init("disk", "sda")], 4), Reading("m.a", [.init("disk", "sdb")], 5)],
                [Reading("m.a", [.init("disk", "sda")], 6), Reading("m.a", [.init("disk", "bad\u{1}")], 7), Reading("m.b", [], 8)],
            ]
            func sample(elapsed: Duration?) throws -> [Reading] { ticks.removeFirst() }
        }
        let set = SensorSet(sensors: [Moving()], processes: ProcessTreeSensor(procRoot: directory.path), nvidia: nil)
        func tick() -> [String: Double] {
            Dictionary(uniqueKeysWithValues: set.sample(elapsed: nil, roots: [], logger: logger).0.map { ($0.key, $0.value) })
        }
        #expect(tick() == [#"system/m.a{disk="sda"}"#: 1, "system/m.b": 2])
        #expect(tick() == [#"system/m.a{disk="sda"}"#: 4, "system/m.b": 3, #"system/m.a{disk="sdb"}"#: 5])
        #expect(tick() == [#"system/m.a{disk="sda"}"#: 6, "system/m.b": 8])
        #expect(set.problems["moving readings"]?.contains("cannot be stored") == true)
    }
}
