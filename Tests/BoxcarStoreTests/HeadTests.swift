@testable import BoxcarStore
import BoxcarStorage
import BoxcarModel
import BoxcarTestSupport
import Foundation
import Testing

/// The head (a row a tick) and its compaction into a block per series: reads see head and blocks
/// as one series, the outbox ships every point once whatever is compacted between its reads, and
/// a database written before the head is read and compacted.
@Suite struct HeadTests {
    let directory = TemporaryDirectory()

    /// A tick of the machine at `n`: step n, wallclock n seconds, values that tell key and tick apart.
    func tick(_ n: Int, keys: [String] = ["system/cpu", "system/memory"], parent: String = Store.hostID) -> Store.Tick {
        Store.Tick(
            parentID: parent, step: UInt64(n), wallclock: Int64(n) * 1_000_000_000, keys: keys,
            values: keys.indices.map { Double(n) + Double($0) / 10 })
    }

    /// A copy of Tests/Fixtures/databases/`name` in the test's directory, as `copy`.
    func fixtureDatabase(_ name: String, as copy: String) throws -> String {
        let path = directory.file(copy)
        try FileManager.default.copyItem(atPath: fixturesDirectory + "/databases/" + name, toPath: path)
        return path
    }

    func count(_ store: Store, _ sql: String) async throws -> Int64 {
        try await store.read { connection in
            let statement = try connection.statement(sql)
            defer { statement.reset() }
            return try statement.step() ? statement.int64(0) : -1
        }
    }

    func integrity(_ store: Store) async throws -> String {
        try await store.read { connection in
            let statement = try connection.statement("PRAGMA integrity_check")
            defer { statement.reset() }
            return try statement.step() ? statement.string(0) : ""
        }
    }

    /// What a reader expects of series `key` over ticks `range` (the key's index in `keys`).
    func expected(_ range: ClosedRange<Int>, index: Int) -> MetricColumns {
        var columns = MetricColumns()
        for n in range { columns.append(step: UInt64(n), wallclock: Int64(n) * 1_000_000_000, value: Double(n) + Double(index) / 10) }
        return columns
    }

    @Test func ticksReadAsSeriesBeforeAcrossAndAfterCompaction() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        for n in 1...10 { try await store.appendTick(tick(n)) }
        // A tick with one more series: a second set, and the new series from there on.
        try await store.appendTick(tick(11, keys: ["system/cpu", "system/memory", "system/gpu"]))
        #expect(try await count(store, "SELECT count(*) FROM ticks") == 11)
        #expect(try await count(store, "SELECT count(*) FROM series_sets") == 2)
        // Each value took a sequence number of its own: 10 × 2 + 3.
        #expect(store.lastSequence == 23)

        func check(_ label: String) async throws {
            let host = try await store.metrics(parentID: Store.hostID)
            #expect(host.map(\.key) == ["system/cpu", "system/gpu", "system/memory"], "\(label)")
            #expect(host[0].columns == expected(1...11, index: 0), "\(label)")
            #expect(host[1].columns == expected(11...11, index: 2), "\(label)")
            #expect(host[2].columns == expected(1...11, index: 1), "\(label)")
            let ranged = try await store.metrics(
                parentID: Store.hostID, keys: ["system/cpu"], range: MetricRange(from: 3, to: 5, axis: .step))
            #expect(ranged.first?.columns == expected(3...5, index: 0), "\(label)")
            #expect(try await store.stepExtent(parentID: Store.hostID, key: "system/memory") == 1...11, "\(label)")
        }
        try await check("all in the head")
        // Four ticks a block: the first stretch (ticks 1-4) compacted, the head read across it.
        let first = try await store.compactHead(ticksPerBlock: 4, idleBefore: 0, readers: .init())
        #expect(first.ticks == 4 && first.blocks == 2 && first.points == 8)
        #expect(try await count(store, "SELECT count(*) FROM ticks") == 7)
        try await check("head and blocks")
        // Each block took its series' last point's number: tick 4 held 7 (cpu) and 8 (memory).
        let seqs = try await store.read { connection in
            let statement = try connection.statement("SELECT seq, count FROM metric_blocks ORDER BY seq")
            defer { statement.reset() }
            var out: [[Int64]] = []
            while try statement.step() { out.append([statement.int64(0), statement.int64(1)]) }
            return out
        }
        #expect(seqs == [[7, 4], [8, 4]])
        // Compacted as a block of version 2 (Gorilla): the constant steps and times cost bits.
        let data = try await store.read { connection in
            let statement = try connection.statement("SELECT data FROM metric_blocks WHERE seq = 7")
            defer { statement.reset() }
            _ = try statement.step()
            return statement.withBlob(0) { Array($0) }
        }
        #expect(data.first == MetricBlock.compressedVersion)

        // The rest: 4 more, then the 3 left once the parent is idle (its newest tick is old).
        #expect(try await store.compactHead(ticksPerBlock: 4, idleBefore: 0, readers: .init()).ticks == 4)
        #expect(try await store.compactHead(ticksPerBlock: 4, idleBefore: 0, readers: .init()).ticks == 0)
        #expect(try await store.compactHead(ticksPerBlock: 4, idleBefore: .max, readers: .init()).ticks == 3)
        #expect(try await count(store, "SELECT count(*) FROM ticks") == 0)
        try await check("all compacted")
        #expect(try await integrity(store) == "ok")
        await store.close()
    }

    /// A group of writes that stores only ticks leaves `meta`'s counter as it was, their rows
    /// saying how far they took it: the numbering and the outbox's end count them all the same,
    /// after a restart, and after compaction has removed them.
    @Test func numbersTakenByTicksAloneAreNeverHandedOutAgain() async throws {
        let path = directory.file("boxcar.db")
        func opened(_ body: (Store) async throws -> Void) async throws {
            let store = try Store.open(path: path)
            try await body(store)
            await store.close()
        }
        try await opened { store in
            for n in 1...3 { try await store.appendTick(tick(n)) }
            #expect(try await count(store, "SELECT value FROM meta WHERE key = 'sequence'") == 0)
            #expect(store.lastSequence == 6)
            #expect(try await store.outbox(after: 0, maxRows: 100, maxBytes: 1 << 20, hostSeries: .all).through == 6)
        }
        try await opened { store in
            #expect(store.lastSequence == 6)
            try await store.appendTick(tick(4))
            #expect(try await count(store, "SELECT seq FROM ticks WHERE step = 4") == 7)
            // Compaction removes every tick, and stores the counter.
            #expect(try await store.compactHead(ticksPerBlock: 4, idleBefore: .max, readers: .init()).ticks == 4)
            #expect(try await count(store, "SELECT count(*) FROM ticks") == 0)
        }
        try await opened { store in
            #expect(store.lastSequence == 8)
            try await store.appendTick(tick(5))
            #expect(try await count(store, "SELECT seq FROM ticks") == 9)
            // A write refused after it took a number: the outbox still reaches the writer's last
            // number (the forwarder's "caught up"), with ticks alone after it too.
            await #expect(throws: NotFoundError.self) {
                try await store.write { context in
                    _ = context.nextSequence()
                    throw NotFoundError("refused")
                }
            }
            try await store.appendTick(tick(6))
            #expect(store.lastSequence == 13)
            #expect(try await store.outbox(after: 8, maxRows: 100, maxBytes: 1 << 20, hostSeries: .all).through == 13)
            await #expect(throws: NotFoundError.self) {
                try await store.write { context in
                    _ = context.nextSequence()
                    throw NotFoundError("refused")
                }
            }
            #expect(store.lastSequence == 14)
            #expect(try await store.outbox(after: 8, maxRows: 100, maxBytes: 1 << 20, hostSeries: .all).through == 14)
        }
    }

    /// A reader of the outbox that takes small batches, with compaction run between them, gets
    /// each point once: as a tick's point before its stretch is compacted, in a block after.
    @Test func theOutboxShipsEveryPointOnceWhateverIsCompactedBetweenItsReads() async throws {
        for (forwarding, batchRows) in [(true, 3), (true, 7), (false, 5)] {
            let store = try Store.open(path: directory.file("outbox-\(forwarding)-\(batchRows).db"))
            let readers = Store.OutboxReaders(forwarding: forwarding, cursors: forwarding ? [] : ["remote_write:r"])
            if forwarding { _ = try await store.forwardState(startingFromNow: false) } else { _ = try await store.cursor("remote_write:r") }
            var shipped: [String: [UInt64]] = [:]
            var cursor: Int64 = 0
            var n = 0
            // Ticks come while the reader drains and compaction runs, in turns.
            // More ticks a round than a batch of 3 takes: that reader falls behind, and
            // compaction finds stretches it is reading.
            for round in 0..<60 {
                for _ in 0..<(round % 4) {
                    n += 1
                    try await store.appendTick(tick(n, keys: n % 5 == 0 ? ["system/cpu"] : ["system/cpu", "system/memory", "system/gpu"]))
                }
                let batch = try await store.outbox(
                    after: cursor, maxRows: batchRows, maxBytes: 1 << 20,
                    selection: forwarding ? .everything(hostSeries: .all) : .machineSeries(experiments: false))
                for (_, row) in batch.rows {
                    guard case .metricBlock(_, let key, _, _, _, _, _, let data) = row else { continue }
                    var columns = MetricColumns()
                    try data.withUnsafeBytes { try MetricBlock.decode($0, into: &columns) }
                    shipped[key, default: []] += columns.steps
                }
                // Compaction runs while the batch is on its way, before it is acknowledged, all
                // it can (as the agent's does).
                while try await store.compactHead(ticksPerBlock: 4, idleBefore: 0, readers: readers).ticks > 0 {}
                cursor = batch.through
                if forwarding {
                    try await store.acknowledgeForwarded(through: cursor, refused: [])
                } else {
                    try await store.setCursor("remote_write:r", to: cursor)
                }
            }
            // The rest, compacted before it is read: shipped as blocks.
            _ = try await store.compactHead(ticksPerBlock: 4, idleBefore: .max, readers: .init())
            while true {
                let batch = try await store.outbox(after: cursor, maxRows: batchRows, maxBytes: 1 << 20, selection: .everything(hostSeries: .all))
                for (_, row) in batch.rows {
                    guard case .metricBlock(_, let key, _, _, _, _, _, let data) = row else { continue }
                    var columns = MetricColumns()
                    try data.withUnsafeBytes { try MetricBlock.decode($0, into: &columns) }
                    shipped[key, default: []] += columns.steps
                }
                if batch.through == cursor { break }
                cursor = batch.through
            }
            let all = (1...n).map(UInt64.init)
            let label = "forwarding \(forwarding), batches of \(batchRows)"
            #expect(shipped["system/cpu"]?.sorted() == all, "\(label)")
            #expect(shipped["system/memory"]?.sorted() == all.filter { $0 % 5 != 0 }, "\(label)")
            #expect(shipped["system/gpu"]?.sorted() == all.filter { $0 % 5 != 0 }, "\(label)")
            #expect(try await count(store, "SELECT count(*) FROM metric_blocks") > 0, "\(label): nothing was compacted")
            await store.close()
        }
    }

    /// Remote write reads only `system/` series: ticks that hold none move its cursor on.
    @Test func ticksWithoutAMachineSeriesMoveARemoteWriteReaderOn() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "r"))
        for n in 1...5 { try await store.appendTick(tick(n, keys: ["a", "b"], parent: experiment.id)) }
        var cursor: Int64 = 1
        var batches = 0
        while true {
            let batch = try await store.outbox(after: cursor, maxRows: 2, maxBytes: 1 << 20, selection: .machineSeries(experiments: true))
            #expect(batch.rows.isEmpty)
            if batch.through == cursor { break }
            #expect(batch.through > cursor)
            cursor = batch.through
            batches += 1
        }
        #expect(cursor == 11 && batches == 3)
        await store.close()
    }

    /// A cursor kept from a reader that no longer runs is never inside a compacted stretch: the
    /// tick it falls in stays in the head, the ticks on either side are compacted apart.
    @Test func aKeptCursorInsideATickLeavesThatTickInTheHead() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        for n in 1...9 { try await store.appendTick(tick(n)) }
        // Tick 5 holds seqs 9 and 10: a cursor at 9 is inside it.
        try await store.setCursor("remote_write:gone", to: 9)
        while try await store.compactHead(ticksPerBlock: 4, idleBefore: .max, readers: .init()).ticks > 0 {}
        #expect(try await count(store, "SELECT count(*) FROM ticks") == 1)
        #expect(try await count(store, "SELECT seq FROM ticks") == 9)
        let host = try await store.metrics(parentID: Store.hostID)
        #expect(host.first?.columns == expected(1...9, index: 0))
        // The reader that comes back at 9 gets seq 10 (memory's point of tick 5) and what follows.
        let batch = try await store.outbox(after: 9, maxRows: 100, maxBytes: 1 << 20, hostSeries: .all)
        #expect(batch.rows.first?.seq == 10)
        var steps: [UInt64] = []
        for (_, row) in batch.rows {
            guard case .metricBlock(_, _, _, _, _, _, _, let data) = row else { continue }
            var columns = MetricColumns()
            try data.withUnsafeBytes { try MetricBlock.decode($0, into: &columns) }
            steps += columns.steps
        }
        #expect(steps.sorted() == [5, 6, 6, 7, 7, 8, 8, 9, 9])
        await store.close()
    }

    /// Retention removes old ticks like old blocks, and by age keeps the machine's points inside
    /// an experiment's attachment windows: its `system/…` series read them.
    @Test func retentionRemovesOldTicksAndKeepsAttachedWindows() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        let (experiment, _) = try await store.createExperiment(.init(name: "run", namespace: "r"))
        for n in 1...6 { try await store.appendTick(tick(n)) }
        _ = try await store.compactHead(ticksPerBlock: 3, idleBefore: 0, readers: .init())
        // From the oldest block's newest point (tick 3) to the head's newest tick.
        #expect(try await store.hostWallclocks() == 3_000_000_000...6_000_000_000)
        // A window from 2.5 s to 3.5 s: tick 3 (in the block of ticks 1-3) is inside it.
        try await store.write { context in
            let statement = try context.connection.statement(
                "INSERT INTO attachments (seq, experiment_id, pid, attached_ns, detached_ns) VALUES (?, ?, 1, 2500000000, 3500000000)")
            statement.bind([context.nextSequence(), experiment.id])
            try statement.run()
        }
        _ = try await store.removeHostBlocks(olderThan: 5_500_000_000, limit: 100, keepingAttached: true)
        // The block of ticks 1-3 is kept (it holds tick 3); ticks 4 and 5 of the head go.
        #expect(try await store.metrics(parentID: Store.hostID).first?.columns.steps == [1, 2, 3, 6])
        #expect(try await store.metrics(parentID: experiment.id).first?.columns.steps == [3])
        // The disk's limit takes the window too.
        _ = try await store.removeHostBlocks(olderThan: 5_500_000_000, limit: 100)
        #expect(try await store.metrics(parentID: Store.hostID).first?.columns.steps == [6])
        #expect(try await store.hostWallclocks() == 6_000_000_000...6_000_000_000)
        await store.close()
    }

    /// A database written by the agent before the head (schema 5, a block per machine point:
    /// Tests/Fixtures/databases/schema-5.db, 75 host series, 1,219 points, an attached experiment)
    /// opens, reads as it did, and its machine's blocks are merged into a block per series.
    @Test func aDatabaseWrittenBeforeTheHeadIsReadAndCompacted() async throws {
        let path = try fixtureDatabase("schema-5.db", as: "old.db")
        let store = try Store.open(path: path)
        #expect(try await count(store, "PRAGMA user_version") == Int64(Migrations.all.count))
        let experimentID = "4831be9b48fb8d63185b9f4a593568c15f0d7ad3"
        let hostBefore = try await store.metrics(parentID: Store.hostID)
        let experimentBefore = try await store.metrics(parentID: experimentID)
        #expect(hostBefore.count == 75)
        #expect(hostBefore.reduce(0) { $0 + $1.columns.count } == 1219)
        #expect(experimentBefore.first { $0.key == "loss" }?.columns.count == 50)
        #expect(experimentBefore.contains { $0.key.hasPrefix("system/") })
        #expect(try await count(store, "SELECT count(*) FROM metric_blocks") == 1324)

        var merged = 0
        while true {
            let done = try await store.compactHead(ticksPerBlock: 600, idleBefore: .max, readers: .init())
            if done.merged == 0 { break }
            merged += done.merged
        }
        #expect(merged == 1219)
        // A block per host series, the experiment's blocks as they were.
        #expect(try await count(store, """
            SELECT count(*) FROM metric_blocks b JOIN series s ON s.id = b.series_id WHERE s.parent_id = 'host'
            """) == 75)
        #expect(try await count(store, "SELECT count(*) FROM metric_blocks") == 1324 - 1219 + 75)
        let hostAfter = try await store.metrics(parentID: Store.hostID)
        #expect(hostAfter.map(\.key) == hostBefore.map(\.key) && hostAfter.map(\.columns) == hostBefore.map(\.columns))
        let experimentAfter = try await store.metrics(parentID: experimentID)
        #expect(experimentAfter.map(\.key) == experimentBefore.map(\.key))
        #expect(experimentAfter.map(\.columns) == experimentBefore.map(\.columns))
        #expect(try await integrity(store) == "ok")
        // Then the agent writes ticks beside the old blocks, read as one series.
        try await store.appendTick(tick(2_000_000_000, keys: [hostBefore[0].key]))
        let after = try await store.metrics(parentID: Store.hostID, keys: [hostBefore[0].key])
        #expect(after.first?.columns.count == hostBefore[0].columns.count + 1)
        await store.close()
    }

    /// A database whose head was written 8 bytes a value (schema 6:
    /// Tests/Fixtures/databases/schema-6-head.db, a release agent sampling this machine 41 times,
    /// 75 series, 2,844 points, none compacted) reads as written, takes ticks laid out the new way
    /// beside them, and compacts both.
    @Test func aHeadWrittenEightBytesAValueIsReadBesideTheNewLayoutAndCompacted() async throws {
        let path = try fixtureDatabase("schema-6-head.db", as: "head6.db")
        let store = try Store.open(path: path)
        #expect(try await count(store, "PRAGMA user_version") == Int64(Migrations.all.count))
        let before = try await store.metrics(parentID: Store.hostID)
        #expect(before.count == 75)
        #expect(before.reduce(0) { $0 + $1.columns.count } == 2844)
        let limit = "system/system.memory.limit"
        func series(_ all: [(key: String, columns: MetricColumns)], _ key: String) -> MetricColumns? { all.first { $0.key == key }?.columns }
        #expect(series(before, limit)?.values == Array(repeating: 25_275_973_632, count: 41))
        let load = try #require(series(before, "system/system.cpu.load_average.1m"))
        #expect(Array(load.steps.prefix(2)) == [1_796_246_003_066, 1_796_246_003_166] && Array(load.values.prefix(2)) == [0.97, 0.97])
        let user = try #require(series(before, #"system/system.cpu.utilization{cpu.mode="user"}"#))
        #expect(user.steps.first == 1_796_246_003_166 && user.values.first == 1.0 / 22)

        try await store.appendTick(Store.Tick(
            parentID: Store.hostID, step: 1_796_246_100_000, wallclock: 1_796_246_100_000_000_000, keys: [limit], values: [25_275_973_632]))
        #expect(try await count(store, "SELECT count(*) FROM ticks WHERE packing = 0") == 41)
        #expect(try await count(store, "SELECT count(*) FROM ticks WHERE packing = 1") == 1)
        let both = try await store.metrics(parentID: Store.hostID)
        #expect(series(both, limit)?.values == Array(repeating: 25_275_973_632, count: 42))
        #expect(both.filter { $0.key != limit }.map(\.columns) == before.filter { $0.key != limit }.map(\.columns))

        while try await store.compactHead(ticksPerBlock: 600, idleBefore: .max, readers: .init()).merged > 0 {}
        #expect(try await count(store, "SELECT count(*) FROM ticks") == 0)
        #expect(try await store.metrics(parentID: Store.hostID).map(\.columns) == both.map(\.columns))
        #expect(try await integrity(store) == "ok")
        await store.close()
    }

    /// A tick's values come back bit for bit: every kind of double (NaN with a payload, the
    /// infinities, -0, subnormals, whole numbers, noise), in either layout; a damaged row is refused.
    @Test func tickValuesRoundTripBitForBitAndRefuseDamage() throws {
        var generator = SystemRandomNumberGenerator()
        let special: [Double] = [
            0, -0.0, .infinity, -.infinity, .nan, Double(bitPattern: 0x7FF8_0000_0000_1234), .leastNonzeroMagnitude,
            -.leastNormalMagnitude / 3, .greatestFiniteMagnitude, 1, 25_275_973_632, 0.97, 1.0 / 22,
        ]
        for length in [0, 1, 2, 3, 7, 8, 64, 2039] {
            var values: [Double] = []
            for index in 0..<length {
                switch index % 3 {
                case 0: values.append(special[Int.random(in: 0..<special.count, using: &generator)])
                case 1: values.append(Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &generator)))
                default: values.append(Double(Int.random(in: 0..<1_000_000, using: &generator)))
                }
            }
            let trimmed = TickValues.encode(values)
            let decoded = try trimmed.withUnsafeBytes { try TickValues.decode($0, packing: TickValues.trimmed, count: length) }
            #expect(decoded.map(\.bitPattern) == values.map(\.bitPattern))
            let plain = values.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
            let read = try plain.withUnsafeBytes { try TickValues.decode($0, packing: TickValues.plain, count: length) }
            #expect(read.map(\.bitPattern) == values.map(\.bitPattern))
            guard length > 0 else { continue }
            for damaged in [Array(trimmed.dropLast()), trimmed + [0], [0xFF] + trimmed.dropFirst()] {
                #expect(throws: CorruptHead.self) {
                    try damaged.withUnsafeBytes { try TickValues.decode($0, packing: TickValues.trimmed, count: length) }
                }
            }
            #expect(throws: CorruptHead.self) { try trimmed.withUnsafeBytes { try TickValues.decode($0, packing: 2, count: length) } }
        }
        // Mostly zeros and whole numbers, as a machine's tick is: a fraction of 8 bytes a value.
        let machine: [Double] = (0..<2000).map { index in index % 7 == 0 ? Double(index) : 0 }
        #expect(TickValues.encode(machine).count < 2000 * 8 / 4)
    }

    /// Sensors on slower cadences make sets that take turns: the head gives each series its points
    /// in tick order across them, as the store's reads return them (unsorted, each read sorted
    /// them again).
    @Test func theHeadReadsSetsThatTakeTurnsInTickOrder() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        for n in 1...7 { try await store.appendTick(tick(n, keys: n % 3 == 0 ? ["system/cpu", "system/memory"] : ["system/cpu"])) }
        let head = try await store.read { connection in
            let ids = try connection.statement("SELECT id, key FROM series WHERE parent_id = 'host'")
            defer { ids.reset() }
            var byKey: [String: Int64] = [:]
            while try ids.step() { byKey[ids.string(1)] = ids.int64(0) }
            let points = try Store.headPoints(
                parentID: Store.hostID, seriesIDs: Set(byKey.values), lower: .min, upper: .max, connection: connection)
            return byKey.mapValues { points[$0]?.steps ?? [] }
        }
        #expect(head["system/cpu"] == [1, 2, 3, 4, 5, 6, 7])
        #expect(head["system/memory"] == [3, 6])
        await store.close()
    }

    /// Sets that change from tick to tick (a slow sensor's run of series left out, a new series
    /// added, series swapped, one found only past the look-ahead) keep every value in its own
    /// series: the writer finds a new set's series by walking the longest recent one. Compacted,
    /// each series keeps its values at its own ticks: compaction shares the stretch's steps and
    /// wallclocks with the series in every tick, and picks out the ticks of the others.
    @Test func everyValueOfChangingSetsLandsInItsOwnSeries() async throws {
        let store = try Store.open(path: directory.file("boxcar.db"))
        let all = (0..<200).map { "system/s\($0)" }
        let sets: [[String]] = [
            all,
            all.filter { !(50..<80).contains(Int($0.dropFirst(8))!) },  // a run left out
            Array(all.prefix(100)) + ["system/new"] + Array(all.dropFirst(100)),  // one added
            [all[1], all[0]] + Array(all.dropFirst(2)),  // two swapped
            [all[150]] + Array(all.prefix(150)),  // one far ahead of its place
            Array(all.reversed()),
            all + ["system/new"],  // the one added, back after a gap
        ]
        var expected: [String: MetricColumns] = [:]
        for (n, keys) in sets.enumerated() {
            // Each value names its series and its tick.
            let values = keys.map { Double(Int($0.dropFirst(8)) ?? 999) * 1000 + Double(n) }
            for (key, value) in zip(keys, values) {
                expected[key, default: MetricColumns()].append(step: UInt64(n), wallclock: Int64(n) * 1_000_000_000, value: value)
            }
            try await store.appendTick(Store.Tick(parentID: Store.hostID, step: UInt64(n), wallclock: Int64(n) * 1_000_000_000, keys: keys, values: values))
        }
        func check(_ label: String) async throws {
            let read = try await store.metrics(parentID: Store.hostID)
            #expect(read.count == 201, "\(label)")
            for (key, columns) in read {
                #expect(columns == expected[key], "\(key), \(label)")
            }
        }
        try await check("in the head")
        let compacted = try await store.compactHead(ticksPerBlock: 100, idleBefore: .max, readers: .init())
        #expect(compacted.ticks == sets.count && compacted.blocks == 201)
        #expect(try await count(store, "SELECT count(*) FROM ticks") == 0)
        try await check("compacted")
        await store.close()
    }

    /// A newer boxcar reading the database of an older agent that still runs (`--db`, read-only,
    /// so not migrated) reads what the agent wrote: a head of 8 bytes a value (schema 6), and a
    /// database from before the head (schema 5); the outbox ships the old head's values too.
    @Test func olderDatabasesReadOnlyAndTheOldHeadThroughTheOutbox() async throws {
        for (name, points) in [("schema-6-head.db", 2844), ("schema-5.db", 1219)] {
            let store = try Store.openReadOnly(path: try fixtureDatabase(name, as: "ro-" + name))
            let host = try await store.metrics(parentID: Store.hostID)
            #expect(host.count == 75, "\(name)")
            #expect(host.reduce(0) { $0 + $1.columns.count } == points, "\(name)")
            if name == "schema-6-head.db" {
                #expect(host.first { $0.key == "system/system.memory.limit" }?.columns.values == Array(repeating: 25_275_973_632, count: 41))
            }
        }
        // The old head through the outbox (remote write, the forwarder), after migration.
        let store = try Store.open(path: try fixtureDatabase("schema-6-head.db", as: "outbox-head6.db"))
        var cursor: Int64 = 0
        var limits: [Double] = []
        var shipped = 0
        while true {
            let batch = try await store.outbox(after: cursor, maxRows: 500, maxBytes: 1 << 20, selection: .everything(hostSeries: .all))
            for (_, row) in batch.rows {
                guard case .metricBlock(_, let key, _, _, _, _, _, let data) = row else { continue }
                var columns = MetricColumns()
                try data.withUnsafeBytes { try MetricBlock.decode($0, into: &columns) }
                shipped += columns.count
                if key == "system/system.memory.limit" { limits += columns.values }
            }
            if batch.through == cursor { break }
            cursor = batch.through
        }
        #expect(shipped == 2844)
        #expect(limits == Array(repeating: 25_275_973_632, count: 41))
        await store.close()
    }

    /// Ticks handed to the writer together: one refused (its parent is unknown) loses only
    /// itself, and the error is the caller's once the others are stored.
    @Test func ticksHandedTogetherLoseOnlyTheRefusedOne() async throws {
        let store = try Store.open(path: directory.file("together.db"))
        await #expect(throws: (any Error).self) {
            try await store.appendTicks([tick(1), tick(1, parent: "no-such-experiment"), tick(2)])
        }
        #expect(try await store.metrics(parentID: Store.hostID).first?.columns.steps == [1, 2])
        await store.close()
    }
}
