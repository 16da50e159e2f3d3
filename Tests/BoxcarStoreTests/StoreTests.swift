@testable import BoxcarStore
import BoxcarStorage
import BoxcarModel
import Dispatch
import Glibc
import Synchronization
import Testing
import BoxcarTestSupport

/// Float points at the given steps, wallclock = step × 1000.
func points(_ values: [(UInt64, Double)]) -> MetricColumns {
    var columns = MetricColumns()
    for (step, value) in values { columns.append(step: step, wallclock: Int64(step) * 1000, value: value) }
    return columns
}

@Suite struct StoreTests {
    let directory = TemporaryDirectory()
    var path: String { directory.file("boxcar.db") }

    @Test func migratesAFreshDatabaseToTheNewestSchema() async throws {
        let store = try Store.open(path: path)
        await store.close()
        let connection = try Connection(path: path, readOnly: true)
        #expect(try Migrations.userVersion(connection) == Migrations.all.count)
    }

    @Test func refusesADatabaseFromANewerBoxcar() async throws {
        do {
            let store = try Store.open(path: path)
            await store.close()
        }
        let connection = try Connection(path: path, readOnly: false)
        try connection.execute("PRAGMA user_version = \(Migrations.all.count + 1)")
        for open in [{ try Store.open(path: path) }, { try Store.openReadOnly(path: path) }] {
            #expect { _ = try open() } throws: { error in
                "\(error)".contains("newer than this boxcar knows")
            }
        }
    }

    @Test func readersAndWritersRefuseSomeoneElsesDatabase() throws {
        let connection = try Connection(path: path, readOnly: false)
        try connection.execute("CREATE TABLE notes (text TEXT); PRAGMA user_version = 1")
        for open in [{ try Store.open(path: path) }, { try Store.openReadOnly(path: path) }] {
            #expect { _ = try open() } throws: { error in
                "\(error)".contains("is a SQLite database but not a boxcar one")
            }
        }
    }

    @Test func experimentsHaveASeriesLimitAndTheMachineNone() async throws {
        // Retention removes host points, never host series: were the machine limited too, a
        // host whose devices come and go would one day stop being sampled.
        let store = try Store.open(path: path)
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "r"))
        let limit = Limits.standard.maxSeriesPerParent
        func series(_ parent: String, _ range: Range<Int>) -> IngestBatch {
            IngestBatch(series: range.map { .init(parentID: parent, key: "k\($0)", columns: points([(1, 1)])) })
        }
        try await store.ingest(series(experiment.id, 0..<(limit - 1)))
        // A batch refused for another reason (an unknown parent) takes back the series it counted.
        var refused = series(experiment.id, (limit - 1)..<limit)
        refused.series += series("no-such-parent", 0..<1).series
        await #expect(throws: (any Error).self) { try await store.ingest(refused) }
        try await store.ingest(series(experiment.id, (limit - 1)..<limit))
        await #expect(throws: LimitExceededError.self) { try await store.ingest(series(experiment.id, limit..<(limit + 1))) }
        try await store.ingest(series(Store.hostID, 0..<(limit + 1)))
        #expect(try await store.metrics(parentID: Store.hostID).count == limit + 1)
        await store.close()
    }

    @Test func refusesASecondWriterOnTheSameDatabase() async throws {
        let store = try Store.open(path: path)
        #expect { _ = try Store.open(path: path) } throws: { error in
            "\(error)".contains("another boxcar agent is writing to \(path)")
        }
        // Readers are welcome.
        _ = try Store.openReadOnly(path: path)
        await store.close()
    }

    @Test func everythingReadsBackAfterReopening() async throws {
        let (experiment, sequence) = try await writeOneOfEach()
        let store = try Store.open(path: path)
        #expect(try await store.experiment(id: experiment.id) == experiment)
        #expect(try await store.metadata(parentID: experiment.id) == ["lr": .number(0.01)])
        let series = try await store.metrics(parentID: experiment.id)
        #expect(series.map(\.key) == ["loss"])
        #expect(series[0].columns.values == [0.9, 0.5])
        #expect(try await store.events(parentID: experiment.id).map(\.name) == ["epoch"])
        #expect(store.lastSequence == sequence)
        // Sequence numbers keep rising across restarts.
        _ = try await store.updateMetadata(parentID: experiment.id, metadata: ["lr": .number(0.02)])
        #expect(store.lastSequence > sequence)
        await store.close()
    }

    /// An experiment with metadata, a series and an event, in a store that is then closed and
    /// released.
    func writeOneOfEach() async throws -> (Experiment, Int64) {
        let store = try Store.open(path: path)
        let (experiment, existed) = try await store.createExperiment(.init(
            name: "run", namespace: "ns", owner: "ada", metadata: ["lr": .number(0.01)]))
        #expect(!existed)
        try await store.appendMetrics(parentID: experiment.id, key: "loss", columns: points([(1, 0.9), (2, 0.5)]))
        _ = try await store.logEvent(Event(
            parentID: experiment.id, name: "epoch", source: "trainer", wallclock: 5,
            metadata: ["n": .number(1)], createdAt: 0))
        let sequence = store.lastSequence
        await store.close()
        return (experiment, sequence)
    }

    @Test func rangesReadOnlyTheirPointsAndTheBlocksThatReachThem() async throws {
        let store = try Store.open(path: path)
        let (experiment, _) = try await store.createExperiment(.init(name: "ranges", namespace: "r"))
        // Three blocks: steps 1…10, 11…20 (wallclock step × 1000), and one with a step past Int64.max.
        for block in 0..<2 {
            let steps = (1...10).map { (UInt64(block * 10 + $0), Double(block * 10 + $0)) }
            try await store.ingest(IngestBatch(series: [.init(parentID: experiment.id, key: "loss", columns: points(steps))]))
        }
        var huge = MetricColumns()
        huge.append(step: (1 << 63) + 1, wallclock: 1, value: -1)
        try await store.ingest(IngestBatch(series: [.init(parentID: experiment.id, key: "loss", columns: huge)]))

        func steps(_ range: MetricRange, key: String = "loss") async throws -> [UInt64] {
            try await store.metrics(parentID: experiment.id, keys: [key], range: range).first?.columns.steps ?? []
        }
        #expect(try await steps(MetricRange(from: 5, to: 12, axis: .step)) == Array(5...12))
        #expect(try await steps(MetricRange(from: 15, to: .max, axis: .step)) == Array(15...20) + [(1 << 63) + 1])
        #expect(try await steps(MetricRange(from: 3000, to: 4000, axis: .wallclock)) == [3, 4])
        #expect(try await store.metrics(parentID: experiment.id, keys: nil, range: MetricRange(from: 21, to: 100, axis: .step)).isEmpty)
        #expect(try await store.stepExtent(parentID: experiment.id, key: "loss") == 1...((1 << 63) + 1))
        #expect(try await store.stepExtent(parentID: experiment.id, key: "none") == nil)
        // One block with steps on both sides of 2^63: its bounds are not kept, so all steps are its.
        var mixed = MetricColumns()
        for step: UInt64 in [3, 5, (1 << 63) + 10] { mixed.append(step: step, wallclock: 1, value: 0) }
        try await store.ingest(IngestBatch(series: [.init(parentID: experiment.id, key: "mixed", columns: mixed)]))
        #expect(try await store.stepExtent(parentID: experiment.id, key: "mixed") == 0...UInt64.max)
        #expect(try await steps(MetricRange(from: 4, to: 100, axis: .step), key: "mixed") == [5])
        await store.close()
    }

    @Test func creatingTheSameExperimentAgainChangesNothing() async throws {
        let store = try Store.open(path: path)
        let first = try await store.createExperiment(.init(name: "run", namespace: "ns", metadata: ["a": .number(1)]))
        let second = try await store.createExperiment(.init(name: "run", namespace: "ns", owner: "other", metadata: ["a": .number(2)]))
        #expect(second.existed)
        #expect(second.experiment == first.experiment)
        #expect(try await store.metadata(parentID: first.experiment.id) == ["a": .number(1)])
        await store.close()
    }

    @Test func aRefusedWriteStoresNothingAndSparesItsGroup() async throws {
        let store = try Store.open(path: path)
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "ns"))
        // Many writes queued at once share commits; one of them names an unknown parent.
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<200 {
                group.addTask {
                    do {
                        let batch = IngestBatch(series: [
                            .init(parentID: experiment.id, key: "loss", columns: points([(UInt64(index), 1)])),
                            .init(parentID: index == 100 ? "missing" : experiment.id, key: "acc", columns: points([(UInt64(index), 1)])),
                        ])
                        try await store.ingest(batch)
                        return true
                    } catch is NotFoundError {
                        return false
                    }
                }
            }
            var refused = 0
            for try await accepted in group where !accepted { refused += 1 }
            #expect(refused == 1)
        }
        let series = try await store.metrics(parentID: experiment.id)
        // The refused batch's "loss" point was rolled back with the rest of it.
        #expect(series.first { $0.key == "loss" }?.columns.count == 199)
        #expect(series.first { $0.key == "acc" }?.columns.count == 199)
        #expect(!(series.first { $0.key == "loss" }?.columns.steps.contains(100) ?? true))
        #expect(try await store.objectKind("missing") == nil)
        await store.close()
    }

    @Test func readersRunBesideTheWriterAndSeeOnlyCommittedBatches() async throws {
        let store = try Store.open(path: path)
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "ns"))
        let reader = try Store.openReadOnly(path: path)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for batch in 0..<50 {
                    let columns = points((0..<100).map { (UInt64(batch * 100 + $0), 1.0) })
                    try await store.appendMetrics(parentID: experiment.id, key: "x", columns: columns)
                }
            }
            group.addTask {
                var last = 0
                while last < 5000 {
                    let count = try await reader.metrics(parentID: experiment.id).first?.columns.count ?? 0
                    // Whole batches only, and never fewer than before.
                    #expect(count % 100 == 0)
                    #expect(count >= last)
                    last = count
                }
            }
            try await group.waitForAll()
        }
        await store.close()
    }

    @Test func unknownParentsAreNotFoundForReadsAndWrites() async throws {
        let store = try Store.open(path: path)
        await #expect(throws: NotFoundError.self) { try await store.metrics(parentID: "nope") }
        await #expect(throws: NotFoundError.self) { try await store.metadata(parentID: "nope") }
        await #expect(throws: NotFoundError.self) { try await store.updateMetadata(parentID: "nope", metadata: ["a": .null]) }
        await #expect(throws: NotFoundError.self) {
            try await store.addFiles([.init(parentID: "nope", fileType: .text, checksum: "", path: "/a")])
        }
        await store.close()
    }

    @Test func checkpointsModelsAndVersions() async throws {
        let store = try Store.open(path: path)
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "ns"))
        let checkpoint = try await store.createCheckpoint(.init(
            experimentID: experiment.id, epoch: 3, metrics: ["loss": 0.25],
            files: [.init(parentID: "", fileType: .checkpoint, checksum: "abc", path: "/ckpt/3.pt")],
            metadata: ["note": .string("best")]))
        let found = try #require(try await store.checkpoint(experimentID: experiment.id, epoch: 3))
        #expect(found.0.id == checkpoint.id)
        #expect(found.0.metrics == ["loss": 0.25])
        #expect(found.1.map(\.path) == ["/ckpt/3.pt"])
        #expect(try await store.metadata(parentID: checkpoint.id) == ["note": .string("best")])

        let (model, _) = try await store.createModel(.init(
            name: "resnet", owner: "ada", namespace: "ns", task: "classify", description: "", metadata: [:], files: []))
        _ = try await store.createModelVersion(.init(
            modelID: model.id, name: "resnet", version: "1", description: "", framework: .pytorch,
            uniqueTags: ["a"], metadata: [:], files: []))
        _ = try await store.createModelVersion(.init(
            modelID: model.id, name: "resnet", version: "2", description: "", framework: .pytorch,
            uniqueTags: ["b"], metadata: [:], files: []))
        let latest = try #require(try await store.latestModelVersion(modelID: model.id))
        #expect(latest.0.version == "2")
        #expect(latest.0.uniqueTags == ["b"])
        await #expect(throws: NotFoundError.self) {
            try await store.createModelVersion(.init(
                modelID: "nope", name: "", version: "1", description: "", framework: .unknown,
                uniqueTags: [], metadata: [:], files: []))
        }
        await store.close()
    }

    @Test func attachmentsRecordTheirWindow() async throws {
        let store = try Store.open(path: path)
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "ns"))
        let attached = try await store.attach(experimentID: experiment.id, pid: 4242)
        let detached = try await store.detach(experimentID: experiment.id, pid: 4242)
        let windows = try await store.attachments(experimentID: experiment.id)
        #expect(windows == [Attachment(experimentID: experiment.id, pid: 4242, attachedAt: attached, detachedAt: detached)])
        await #expect(throws: NotFoundError.self) { try await store.detach(experimentID: experiment.id, pid: 4242) }
        await store.close()
    }

    @Test func closeCommitsEveryAcceptedWriteThenRefuses() async throws {
        let store = try Store.open(path: path)
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "ns"))
        var pending: [Pending<Int64>] = []
        for step in 0..<100 {
            pending.append(try await store.submitIngest(IngestBatch(series: [
                .init(parentID: experiment.id, key: "x", columns: points([(UInt64(step), 1)]))
            ])))
        }
        await store.close()
        for item in pending { _ = try await item.value() }
        await #expect(throws: StoreClosedError.self) { try await store.updateMetadata(parentID: experiment.id, metadata: [:]) }
        let reopened = try Store.openReadOnly(path: path)
        #expect(try await reopened.metrics(parentID: experiment.id).first?.columns.count == 100)
    }
}

@Suite struct StoreFailureTests {
    let directory = TemporaryDirectory()
    var path: String { directory.file("boxcar.db") }

    @Test func aBrokenChainRefusesTheWritesAfterItsFailure() async throws {
        let store = try Store.open(path: path)
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "ns"))
        let chain = WriteChain()
        var pending: [Pending<Int64>] = []
        for (index, parent) in [experiment.id, "missing", experiment.id].enumerated() {
            pending.append(try await store.submitIngest(
                IngestBatch(series: [.init(parentID: parent, key: "x", columns: points([(UInt64(index), 1)]))]),
                chain: chain))
        }
        _ = try await pending[0].value()
        await #expect(throws: NotFoundError.self) { try await pending[1].value() }
        await #expect(throws: WriteChain.Broken.self) { try await pending[2].value() }
        #expect(try await store.metrics(parentID: experiment.id).first?.columns.steps == [0])
        await store.close()
    }

    @Test func aFullDiskRefusesExactlyTheWritesItDidNotStore() async throws {
        let store = try Store.open(path: path)
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "ns"))
        // Cap the file a few pages above its size now: SQLite then fails with SQLITE_FULL and
        // rolls back whole transactions, as on a full disk.
        try await store.write { context in
            let pages = try context.connection.statement("PRAGMA page_count")
            defer { pages.reset() }
            _ = try pages.step()
            try context.connection.execute("PRAGMA max_page_count = \(pages.int64(0) + 12)")
        }
        let outcomes = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for batch in 0..<60 {
                group.addTask {
                    // Values of 64 random bits, which no encoding shrinks: 2 KB a batch, so only some fit.
                    let steps = (0..<200).map { (UInt64(batch * 1000 + $0), Double(bitPattern: .random(in: .min ... .max))) }
                    do {
                        try await store.ingest(IngestBatch(series: [.init(parentID: experiment.id, key: "x", columns: points(steps))]))
                        return (batch, true)
                    } catch let error as SQLiteError where error.isOutOfSpace {
                        return (batch, false)
                    }
                }
            }
            var outcomes: [Int: Bool] = [:]
            for try await (batch, stored) in group { outcomes[batch] = stored }
            return outcomes
        }
        let accepted = Set(outcomes.filter(\.value).map(\.key))
        #expect(!accepted.isEmpty)
        #expect(accepted.count < 60)
        let stored = Set(try await store.metrics(parentID: experiment.id).first?.columns.steps.map { Int($0) / 1000 } ?? [])
        #expect(stored == accepted)
        await store.close()
    }
}

/// A write the agent's rule lets commit on its caller's thread (`Store.commitOnCaller`): a lone
/// call's, on the RPC event loop.
@Suite struct CallerCommitTests {
    let directory = TemporaryDirectory()
    var path: String { directory.file("boxcar.db") }

    @Test func aWriteCommitsOnItsCallerOnlyWhenTheRuleSaysSoAndTheWriterIsIdle() async throws {
        let store = try Store.open(path: path)
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "ns"))
        // No rule: the writer thread commits it.
        #expect(try await store.write { _ in threadName() } == "boxcar-writer")

        let allowed = Mutex(true)
        store.commitOnCaller { allowed.withLock { $0 } }
        #expect(try await store.write { _ in threadName() } != "boxcar-writer")
        // Committed before it returned: a reader sees it at once.
        try await store.appendMetrics(parentID: experiment.id, key: "loss", columns: points([(1, 0.5)]))
        #expect(try await store.metrics(parentID: experiment.id).first?.columns.count == 1)
        // A refusal is thrown to the caller and stores nothing; the next write goes on.
        await #expect(throws: NotFoundError.self) {
            try await store.appendMetrics(parentID: "missing", key: "loss", columns: points([(1, 0.5)]))
        }
        try await store.appendMetrics(parentID: experiment.id, key: "loss", columns: points([(2, 0.5)]))
        #expect(try await store.metrics(parentID: experiment.id).first?.columns.count == 2)

        allowed.withLock { $0 = false }
        #expect(try await store.write { _ in threadName() } == "boxcar-writer")
        allowed.withLock { $0 = true }
        // A large write (TrackArtifacts' thousands of files) would hold the caller: the writer's.
        #expect(try await store.write(rows: Store.rowsCommittedOnCaller + 1) { _ in threadName() } == "boxcar-writer")

        // While the writer commits a group, a write waits its turn in the queue, behind it.
        let release = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        let busy = try await store.writer!.submit { _ in
            started.signal()
            release.wait()
        }
        started.wait()
        async let queued = store.write { _ in threadName() }
        // Waited for, not for ever: a write committed here instead would never be queued.
        try await waitFor { store.pendingWrites > 0 }
        #expect(store.pendingWrites == 1)
        release.signal()
        try await busy.value()
        #expect(try await queued == "boxcar-writer")

        await store.close()
        await #expect(throws: StoreClosedError.self) { try await store.write { _ in threadName() } }
    }

    @Test func aCallersCommitLeavesTheCheckpointToTheWriterThread() async throws {
        let store = try Store.open(path: path)
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "ns"))
        store.commitOnCaller { true }
        // Nothing else writes: the caller commits (once a checkpoint falls due, a write may find
        // the thread running it and queue; the thread is busy for no other reason).
        #expect(try await store.write { _ in threadName() } != "boxcar-writer")
        var size = stat()
        stat(path, &size)
        let before = size.st_size
        // Blocks of 20,000 points: about 6 MB of pages for the WAL in all, past its 1,000 pages.
        for block in 0..<30 {
            let steps = (0..<20_000).map { (UInt64(block * 20_000 + $0), Double.random(in: 0..<1)) }
            try await store.appendMetrics(parentID: experiment.id, key: "loss", columns: points(steps))
        }
        // The writer thread checkpoints once it is free: the pages reach the database file.
        try await waitFor { store.writer!.callersCheckpoints > 0 }
        #expect(store.writer!.callersCheckpoints >= 1)
        stat(path, &size)
        #expect(size.st_size > before + (2 << 20))
        await store.close()
    }

    @Test func aWriteQueuedOrACloseDuringACallersCommitWaitsForIt() async throws {
        let store = try Store.open(path: path)
        store.commitOnCaller { true }
        let release = DispatchSemaphore(value: 0)
        let started = Atomic(false)
        // The caller's commit, held open (on a thread of the pool, which the test does not block).
        let caller = Task.detached { try await store.write { _ in
            started.store(true, ordering: .sequentiallyConsistent)
            release.wait()
            return threadName()
        } }
        while !started.load(ordering: .sequentiallyConsistent) { try await Task.sleep(for: .milliseconds(1)) }
        let queued = try await store.writer!.submit { _ in threadName() }
        async let closed: Void = store.close()
        // Not a wait for a state: time for a writer that would not wait for the caller to run the
        // queued job beside its open transaction (which fails it), before the caller ends.
        try await Task.sleep(for: .milliseconds(100))
        release.signal()
        #expect(try await caller.value != "boxcar-writer")
        #expect(try await queued.value() == "boxcar-writer")
        await closed
    }

    @Test func underFullDurabilityTheWriterCommitsEveryWrite() async throws {
        // An fsync on the caller's thread (the event loop) would hold every other call.
        let store = try Store.open(path: path, durability: .full)
        store.commitOnCaller { true }
        #expect(try await store.write { _ in threadName() } == "boxcar-writer")
        await store.close()
    }
}

/// Returns once `condition` holds, or after 10 s (the caller's expectation then fails).
private func waitFor(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
}

/// The calling thread's name (the writer's is "boxcar-writer").
private func threadName() -> String {
    let file = open("/proc/thread-self/comm", O_RDONLY | O_CLOEXEC)
    guard file >= 0 else { return "?" }
    defer { close(file) }
    var bytes = [UInt8](repeating: 0, count: 64)
    let count = read(file, &bytes, bytes.count)
    return String(decoding: bytes.prefix(max(0, count)).filter { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
}
