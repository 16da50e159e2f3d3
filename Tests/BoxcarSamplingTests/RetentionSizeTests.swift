@testable import BoxcarSampling
import BoxcarModel
import BoxcarStore
import BoxcarTestSupport
import Logging
import Testing

/// `--max-db-size` over a database that minutes of sampling filled, just now or an hour ago (an
/// agent started again later): the oldest machine points go until it fits, and the newest stay.
@Suite struct RetentionSizeTests {
    let directory = TemporaryDirectory()

    @Test(arguments: [0, 3_600]) func aSmallLimitRemovesTheOldestPointsNotAll(endedSecondsAgo: Int) async throws {
        let store = try Store.open(path: directory.file("boxcar-\(endedSecondsAgo).db"))
        // Ten minutes of sampling, a tick a second, as blocks of twenty series.
        let now = WallClock.now() - Int64(endedSecondsAgo) * 1_000_000_000
        let ticks = 600
        for tick in 0..<ticks {
            let wallclock = now - Int64(ticks - 1 - tick) * 1_000_000_000
            try await store.ingest(IngestBatch(series: (0..<20).map { index in
                var columns = MetricColumns()
                columns.append(step: UInt64(tick), wallclock: wallclock, value: Double(tick * index))
                return .init(parentID: Store.hostID, key: "system/value.\(index)", columns: columns)
            }))
        }
        let used = try await store.size().usedBytes
        let limit = used * 3 / 4

        let retention = Retention(store: store, maxAge: nil, maxBytes: limit, logger: Logger(label: "test"))
        #expect(try await retention.shrink(to: limit, warned: false) == false)

        #expect(try await store.size().usedBytes <= limit)
        let steps = try await store.metrics(parentID: Store.hostID).map(\.columns.steps)
        #expect(steps.count == 20)
        for kept in steps {
            // The oldest went, the newest stayed, and more than a third of the ticks are kept for
            // a limit of three quarters (ten minutes a step took all ten minutes at once; a tenth
            // of their age, from now, took most of those that ended an hour ago).
            #expect(kept.first.map { $0 > 0 } == true)
            #expect(kept.last == UInt64(ticks - 1))
            #expect(kept.count > ticks / 3, "kept \(kept.count) of \(ticks) ticks")
        }
        await store.close()
    }
}
