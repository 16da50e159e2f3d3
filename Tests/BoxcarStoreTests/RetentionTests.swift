@testable import BoxcarStore
import BoxcarStorage
import BoxcarModel
import BoxcarTestSupport
import Testing

/// Removing the machine's old points: only host blocks older than the cutoff go, a job at a
/// time; experiments keep everything, and the series take new points afterwards.
@Suite struct RetentionTests {
    let directory = TemporaryDirectory()

    @Test func oldHostPointsGoAndExperimentsKeepTheirs() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "r"))
        // One block per host sample, as the sampler writes: steps 1…10 at wallclock step × 1000.
        for step in UInt64(1)...10 {
            try await store.ingest(IngestBatch(series: [
                .init(parentID: Store.hostID, key: "system/cpu", columns: points([(step, 0.5)])),
                .init(parentID: Store.hostID, key: "system/memory", columns: points([(step, 1)])),
            ]))
        }
        try await store.ingest(IngestBatch(series: [.init(parentID: experiment.id, key: "loss", columns: points([(1, 2), (2, 1)]))]))
        #expect(try await store.hostWallclocks() == 1000...10_000)

        // Older than wallclock 6000: steps 1…5 of both series, 10 blocks, taken 4 at a time.
        var removed: [Int] = []
        while removed.last != 0 { removed.append(try await store.removeHostBlocks(olderThan: 6000, limit: 4)) }
        #expect(removed == [4, 4, 2, 0])
        let host = try await store.metrics(parentID: Store.hostID)
        #expect(host.map(\.key) == ["system/cpu", "system/memory"])
        #expect(host.allSatisfy { $0.columns.steps == [6, 7, 8, 9, 10] })
        #expect(try await store.metrics(parentID: experiment.id).first?.columns.steps == [1, 2])
        #expect(try await store.hostWallclocks() == 6000...10_000)

        // All of a series gone: it is no longer listed, and takes points again.
        _ = try await store.removeHostBlocks(olderThan: .max, limit: 100)
        #expect(try await store.metrics(parentID: Store.hostID).isEmpty)
        #expect(try await store.hostWallclocks() == nil)
        try await store.ingest(IngestBatch(series: [.init(parentID: Store.hostID, key: "system/cpu", columns: points([(11, 0.25)]))]))
        #expect(try await store.metrics(parentID: Store.hostID).map(\.columns.steps) == [[11]])
        #expect(try await store.metrics(parentID: experiment.id).first?.columns.steps == [1, 2])

        // A remote-write receiver's cursor holds removal by age at what it has not been sent.
        for step in UInt64(12)...15 {
            try await store.ingest(IngestBatch(series: [.init(parentID: Store.hostID, key: "system/cpu", columns: points([(step, 1)]))]))
        }
        let sent = try await store.cursor("remote_write:http://r/api", formerly: nil)
        try await store.ingest(IngestBatch(series: [.init(parentID: Store.hostID, key: "system/cpu", columns: points([(16, 1)]))]))
        try await store.setCursor("remote_write:http://r/api", to: sent - 2)
        _ = try await store.removeHostBlocks(olderThan: .max, limit: 100, keepingUnreadBy: ["remote_write:http://r/api"])
        #expect(try await store.metrics(parentID: Store.hostID).map(\.columns.steps) == [[14, 15, 16]])
        // A cursor kept under an old name (the URL with its password) is found under the new one.
        try await store.setCursor("remote_write:http://u:pw@r/api", to: 7)
        #expect(try await store.cursor("remote_write:http://u@r/api", formerly: "remote_write:http://u:pw@r/api") == 7)
        #expect(try await store.cursor("remote_write:http://u:pw@r/api") != 7)

        let size = try await store.size()
        #expect(size.usedBytes > 0 && size.fileBytes >= size.usedBytes / 2)
        await store.close()
    }
}
