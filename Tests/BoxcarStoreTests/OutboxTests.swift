@testable import BoxcarStore
import BoxcarStorage
import BoxcarModel
import BoxcarTestSupport
import Testing

/// The database read as an outbox: every table's rows in seq order from a cursor, within a
/// batch's limits, with what retention removes before the upstream acknowledged it.
@Suite struct OutboxTests {
    let directory = TemporaryDirectory()

    func seqs(_ batch: Store.OutboxBatch) -> [Int64] { batch.rows.map(\.seq) }

    @Test func rowsOfEveryTableComeInSeqOrderAndAChangedRowComesAgain() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "r"))  // 1
        // The metadata (2) changes its experiment, which moves to a new seq (3).
        _ = try await store.updateMetadata(parentID: experiment.id, metadata: ["lr": .number(0.1)])  // 2, 3
        try await store.ingest(IngestBatch(series: [.init(parentID: experiment.id, key: "loss", columns: points([(1, 2), (2, 1)]))]))  // 4
        _ = try await store.logEvent(Event(parentID: experiment.id, name: "start", source: "t", wallclock: 5, metadata: [:], createdAt: 0))  // 5
        _ = try await store.attach(experimentID: experiment.id, pid: 42)  // 6

        let all = try await store.outbox(after: 0, maxRows: 100, maxBytes: 1 << 20, hostSeries: .all)
        #expect(seqs(all) == [2, 3, 4, 5, 6])
        #expect(all.rows.map(\.row.kind) == ["metadata", "experiment", "metric-block", "event", "attachment"])
        #expect(all.through == 6)
        guard case .metricBlock(let parent, let key, let count, _, _, _, _, let data) = all.rows[2].row else {
            Issue.record("not a block: \(all.rows[2].row)")
            return
        }
        var decoded = MetricColumns()
        try data.withUnsafeBytes { try MetricBlock.decode($0, into: &decoded) }
        #expect(parent == experiment.id && key == "loss" && count == 2 && decoded.steps == [1, 2])

        // From a cursor, and cut at the row limit: `through` is the last row taken.
        let part = try await store.outbox(after: 2, maxRows: 2, maxBytes: 1 << 20, hostSeries: .all)
        #expect(seqs(part) == [3, 4] && part.through == 4)

        // An upsert and a detach take new seqs, so past the cursor they are shipped again, and
        // the experiment the metadata changed with them.
        let before = try await store.experiment(id: experiment.id)!.updatedAt
        _ = try await store.updateMetadata(parentID: experiment.id, metadata: ["lr": .number(0.2)])  // 7, 8
        _ = try await store.detach(experimentID: experiment.id, pid: 42)  // 9
        let changed = try await store.outbox(after: 6, maxRows: 100, maxBytes: 1 << 20, hostSeries: .all)
        #expect(seqs(changed) == [7, 8, 9])
        if case .metadata(let parent, let key, let value, _) = changed.rows[0].row {
            #expect(parent == experiment.id && key == "lr" && value == "0.2")
        } else {
            Issue.record("not metadata: \(changed.rows[0].row)")
        }
        #expect(changed.rows[1].row.kind == "experiment")
        #expect(try await store.experiment(id: experiment.id)!.updatedAt >= before)
        if case .attachment(_, let pid, _, let detached) = changed.rows[2].row {
            #expect(pid == 42 && detached != nil)
        } else {
            Issue.record("not an attachment: \(changed.rows[2].row)")
        }

        // Nothing new: no rows, and `through` is the cursor.
        let none = try await store.outbox(after: 9, maxRows: 100, maxBytes: 1 << 20, hostSeries: .all)
        #expect(none.rows.isEmpty && none.through == 9)
        await store.close()
    }

    @Test func theMachinesSeriesGoInsideAttachedWindowsAllOrNone() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "r"))  // 1
        func hostSample(_ step: UInt64) async throws {
            try await store.ingest(IngestBatch(series: [
                .init(parentID: Store.hostID, key: "system/cpu", columns: points([(step, 0.5)]).withWallclocks(WallClock.now()))
            ]))
        }
        try await hostSample(1)  // 2: before any trainer attached
        _ = try await store.attach(experimentID: experiment.id, pid: 7)  // 3
        try await hostSample(2)  // 4: inside the window
        for mode in Store.HostSeriesForwarding.allCases {
            let batch = try await store.outbox(after: 0, maxRows: 100, maxBytes: 1 << 20, hostSeries: mode)
            let expected: [Int64] = switch mode {
            case .all: [1, 2, 3, 4]
            case .attached: [1, 3, 4]
            case .none: [1, 3]
            }
            #expect(seqs(batch) == expected, "\(mode)")
            // Rows left out still move the cursor: the batch covers everything committed.
            #expect(batch.through == 4, "\(mode)")
        }
        await store.close()
    }

    @Test func theByteLimitCutsABatchButAlwaysTakesOneRow() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "r"))
        // Values of 64 random bits, which no encoding shrinks: a block of 50 KB.
        let big = MetricColumns((0..<5000).map { MetricPoint(step: UInt64($0), wallclock: Int64($0), value: .float(Double(bitPattern: .random(in: .min ... .max)))) })
        for _ in 0..<3 {
            try await store.ingest(IngestBatch(series: [.init(parentID: experiment.id, key: "loss", columns: big)]))
        }
        let one = try await store.outbox(after: 1, maxRows: 100, maxBytes: 10, hostSeries: .all)
        #expect(seqs(one) == [2] && one.through == 2)
        let two = try await store.outbox(after: 1, maxRows: 100, maxBytes: 80_000, hostSeries: .all)
        #expect(seqs(two) == [2, 3] && two.through == 3)
        // One table filling the row limit may hold more past it: the batch ends at its last row,
        // not at the last seq committed (which would skip seq 4).
        let full = try await store.outbox(after: 1, maxRows: 2, maxBytes: 1 << 30, hostSeries: .all)
        #expect(seqs(full) == [2, 3] && full.through == 3)
        await store.close()
    }

    @Test func aTableCutAtTheByteLimitEndsTheBatchWhereItsReadingStopped() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "r"))  // 1
        // Values of 64 random bits, which no encoding shrinks: a block of 50 KB.
        let big = MetricColumns((0..<5000).map { MetricPoint(step: UInt64($0), wallclock: Int64($0), value: .float(Double(bitPattern: .random(in: .min ... .max)))) })
        for index in 0..<2 {
            try await store.ingest(IngestBatch(series: [.init(parentID: experiment.id, key: "loss", columns: big)]))  // 2, 4
            _ = try await store.logEvent(Event(
                parentID: experiment.id, name: "e\(index)", source: "t", wallclock: 1, metadata: [:], createdAt: 0))  // 3, 5
        }
        // The blocks' table stops reading after one block (50 KB past the 1 KB limit): the batch
        // cannot reach past it, though the events' table was read to its end.
        let first = try await store.outbox(after: 1, maxRows: 100, maxBytes: 1000, hostSeries: .all)
        #expect(seqs(first) == [2] && first.through == 2)
        let second = try await store.outbox(after: 2, maxRows: 100, maxBytes: 1000, hostSeries: .all)
        #expect(seqs(second) == [3, 4] && second.through == 4)
        let last = try await store.outbox(after: 4, maxRows: 100, maxBytes: 1000, hostSeries: .all)
        #expect(seqs(last) == [5] && last.through == 5)
        await store.close()
    }

    @Test func retentionKeepsWhatIsNotAcknowledgedUnlessTheDiskForcesIt() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        for step in UInt64(1)...6 {
            try await store.ingest(IngestBatch(series: [.init(parentID: Store.hostID, key: "system/cpu", columns: points([(step, 0.5)]))]))
        }
        let state = try await store.forwardState(startingFromNow: false)
        #expect(state == .init(acknowledged: 0, start: 0, quarantined: 0, skippedRecords: 0))
        try await store.acknowledgeForwarded(through: 2, refused: [(seq: 2, kind: "metric-block", reason: "bad")])
        // By age: the acknowledged blocks go, the others wait for the upstream.
        #expect(try await store.removeHostBlocks(olderThan: .max, limit: 100, unforwarded: .keep) == 2)
        // Forced by the disk: they go too, and a skipped range stands in their place.
        #expect(try await store.removeHostBlocks(olderThan: 5000, limit: 100, unforwarded: .skip) == 2)
        let batch = try await store.outbox(after: 2, maxRows: 100, maxBytes: 1 << 20, hostSeries: .all)
        #expect(seqs(batch) == [4, 5, 6])
        #expect(batch.rows[0].row == .skipped(fromSeq: 3, records: 2, reason: "removed by --max-db-size before the upstream acknowledged them"))
        let after = try await store.forwardState(startingFromNow: false)
        #expect(after == .init(acknowledged: 2, start: 0, quarantined: 1, skippedRecords: 2))
        await store.close()
    }

    @Test func whatRetentionRemovedAfterAnUpstreamLostItIsAnnouncedAsSkipped() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        for step in UInt64(1)...4 {
            try await store.ingest(IngestBatch(series: [.init(parentID: Store.hostID, key: "system/cpu", columns: points([(step, 0.5)]))]))
        }
        _ = try await store.forwardState(startingFromNow: false)
        try await store.acknowledgeForwarded(through: 4, refused: [])
        #expect(try await store.removeHostBlocks(olderThan: 3000, limit: 100, unforwarded: .keep) == 2)  // seqs 1, 2
        // The upstream comes back holding only seq 1: seq 2 is gone here, 3 and 4 are sent again.
        #expect(try await store.recordLostRange(after: 1))
        let batch = try await store.outbox(after: 1, maxRows: 100, maxBytes: 1 << 20, hostSeries: .all)
        #expect(seqs(batch) == [2, 3, 4])
        #expect(batch.rows[0].row == .skipped(
            fromSeq: 2, records: 0, reason: "removed by retention after the upstream acknowledged them; the upstream has lost them since"))
        // An upstream that lost nothing retention removed: no range.
        #expect(try await store.recordLostRange(after: 2) == false)
        await store.close()
    }

    @Test func forwardingFromNowStartsAfterWhatTheDatabaseHeld() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        _ = try await store.createExperiment(.init(name: "old", namespace: "r"))
        #expect(try await store.forwardState(startingFromNow: true).start == 1)
        _ = try await store.createExperiment(.init(name: "new", namespace: "r"))
        // Recorded once: a later start does not move it.
        #expect(try await store.forwardState(startingFromNow: true).start == 1)
        await store.close()
    }
}

extension MetricColumns {
    func withWallclocks(_ wallclock: Int64) -> MetricColumns {
        var copy = self
        copy.wallclocks = Array(repeating: wallclock, count: count)
        return copy
    }
}
