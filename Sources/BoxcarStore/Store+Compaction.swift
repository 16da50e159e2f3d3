import BoxcarModel

/// Compaction: the head's ticks (Store+Head.swift) rewritten into a compressed block per series
/// (MetricBlock version 3: Gorilla's codecs with runs and ratios), a stretch of ticks at a time.
///
/// A stretch is read and encoded on a reader connection, off the writer; the write job that
/// follows only inserts the blocks and removes the ticks, so ingest waits for it a few
/// milliseconds at most. Each block takes the sequence number of its series' last point in the
/// stretch (a number that point alone held), so the blocks stay in the outbox's order.
///
/// The outbox's readers must neither get a point twice nor miss one. A stretch is compacted only
/// when, for each reader that reads now (the forwarder, each remote-write receiver), all of it is
/// at or below the reader's cursor: what was sent and acknowledged. It is also never cut by a
/// cursor kept from a reader that no longer runs: that reader, run again, starts at its cursor and
/// finds each point of the stretch on one side of it only.
extension Store {
    /// The readers of the outbox that run now, whose cursors a stretch must be behind.
    public struct OutboxReaders: Sendable, Equatable {
        public var forwarding: Bool
        /// The remote-write receivers' cursor names.
        public var cursors: [String]

        public init(forwarding: Bool = false, cursors: [String] = []) {
            self.forwarding = forwarding
            self.cursors = cursors
        }
    }

    /// What the compacted blocks hold, by series (the benchmark's storage-host): their count, and
    /// each series' data bytes and points.
    public func blockSizes() async throws -> (blocks: Int, series: [(key: String, bytes: Int64, points: Int)]) {
        try await read { connection in
            let statement = try connection.statement("""
                SELECT s.key, count(*), sum(length(b.data)), sum(b.count) FROM metric_blocks b JOIN series s ON s.id = b.series_id
                GROUP BY s.id
                """)
            defer { statement.reset() }
            var blocks = 0
            var series: [(key: String, bytes: Int64, points: Int)] = []
            while try statement.step() {
                blocks += Int(statement.int64(1))
                series.append((statement.string(0), statement.int64(2), Int(statement.int64(3))))
            }
            return (blocks, series)
        }
    }

    /// What one call compacted.
    public struct Compacted: Sendable, Equatable {
        public var ticks = 0
        /// Blocks of the machine's series written a point each (schema 5 and older) merged.
        public var merged = 0
        public var blocks = 0
        public var points = 0

        public init() {}
    }

    /// Compacts, for each parent, its oldest `ticksPerBlock` ticks once it has that many, or all
    /// of its ticks once the newest is older than `idleBefore` (a trainer that detached, sampling
    /// turned off). One stretch per parent per call; returns what it did (nothing: all done).
    public func compactHead(ticksPerBlock: Int, idleBefore: Int64, readers: OutboxReaders) async throws -> Compacted {
        let (plans, small) = try await read { connection in
            (try Self.compactionPlans(ticksPerBlock: ticksPerBlock, idleBefore: idleBefore, readers: readers, connection: connection),
             try Self.smallBlockPlans(ticksPerBlock: ticksPerBlock, idleBefore: idleBefore, readers: readers, connection: connection))
        }
        var done = Compacted()
        var complete = true
        for plan in plans + small.plans where !plan.blocks.isEmpty {
            do {
                try await write { context in try Self.commit(plan, readers: readers, context: context) }
                done.ticks += plan.ticks.count
                done.merged += plan.replacedBlocks.count
                done.blocks += plan.blocks.count
                done.points += plan.blocks.reduce(0) { $0 + $1.count }
            } catch is StretchChanged {
                // Retention removed some of its rows meanwhile: planned again next time.
                complete = false
            }
        }
        if complete, let through = small.scannedThrough {
            try await write { context in try Self.setMeta("blocks_compacted_through", through, context.connection) }
        }
        return done
    }

    /// A stretch of one parent's ticks and the blocks that replace them.
    struct CompactionPlan: Sendable {
        var ticks: [Int64]
        var replacedBlocks: [Int64] = []
        /// The lowest and highest sequence number the stretch's points hold.
        var first: Int64
        var last: Int64
        var blocks: [EncodedBlock]
    }

    struct EncodedBlock: Sendable {
        var seq: Int64
        var seriesID: Int64
        var count: Int
        var stepMin: Int64
        var stepMax: Int64
        var wallclockMin: Int64
        var wallclockMax: Int64
        var data: [UInt8]

        /// The block of `columns` at `seq`: their bounds as stored (steps as signed integers).
        init(seq: Int64, seriesID: Int64, columns: MetricColumns) {
            self.seq = seq
            self.seriesID = seriesID
            count = columns.count
            let steps = columns.steps.map { Int64(bitPattern: $0) }
            stepMin = steps.min()!
            stepMax = steps.max()!
            wallclockMin = columns.wallclocks.min()!
            wallclockMax = columns.wallclocks.max()!
            data = MetricBlock.encode(columns)
        }
    }

    struct StretchChanged: Error {}

    /// The cursors a stretch must respect: those of the readers that run now (all of a stretch at
    /// or below each), and every cursor kept (none inside a stretch).
    static func cursors(readers: OutboxReaders, connection: Connection) throws -> (running: [Int64], kept: [Int64]) {
        var running: [Int64] = []
        if readers.forwarding {
            // A forwarder that never ran yet starts at the beginning: it has read nothing.
            running.append(max(try metaValue("forward_acked", connection) ?? 0, try metaValue("forward_start", connection) ?? 0))
        }
        for name in readers.cursors {
            // A receiver without a cursor yet starts after what is committed then: nothing of the head.
            if let cursor = try metaValue("cursor:" + name, connection) { running.append(cursor) }
        }
        let statement = try connection.statement("SELECT value FROM meta WHERE key = 'forward_acked' OR key LIKE 'cursor:%'")
        defer { statement.reset() }
        var kept: [Int64] = []
        while try statement.step() { kept.append(statement.int64(0)) }
        return (running, kept)
    }

    static func compactionPlans(
        ticksPerBlock: Int, idleBefore: Int64, readers: OutboxReaders, connection: Connection
    ) throws -> [CompactionPlan] {
        let parents = try connection.statement("""
            SELECT ss.parent_id, count(*), max(t.wallclock) FROM ticks t JOIN series_sets ss ON ss.id = t.set_id
            GROUP BY ss.parent_id
            """)
        var due: [(parent: String, idle: Bool, ticks: Int)] = []
        while try parents.step() {
            let idle = parents.int64(2) < idleBefore
            let count = Int(parents.int64(1))
            if count >= ticksPerBlock || idle { due.append((parents.string(0), idle, min(count, ticksPerBlock))) }
        }
        parents.reset()
        guard !due.isEmpty else { return [] }
        let (running, kept) = try cursors(readers: readers, connection: connection)
        let ticks = try connection.statement("""
            SELECT t.seq, t.last_seq, t.set_id, t.step, t.wallclock, t.data, t.packing FROM ticks t JOIN series_sets ss ON ss.id = t.set_id
            WHERE ss.parent_id = ? ORDER BY t.seq LIMIT ?
            """)
        var plans: [CompactionPlan] = []
        for (parent, idle, count) in due {
            let sets = Dictionary(uniqueKeysWithValues: try seriesSets(parentID: parent, connection: connection).map { ($0.id, $0.members) })
            var builder = StretchBuilder(capacity: count)
            ticks.bind([parent, Int64(ticksPerBlock)])
            var waitsForReader = false
            while try ticks.step() {
                let (seq, last) = (ticks.int64(0), ticks.int64(1))
                // Behind every running reader: else the stretch ends before this tick, compacted
                // when the readers have moved on.
                guard running.allSatisfy({ last <= $0 }), let members = sets[ticks.int64(2)] else {
                    waitsForReader = true
                    break
                }
                // A kept cursor inside a tick leaves that tick in the head (its reader may never
                // run again to move it); one between ticks ends the stretch there.
                if kept.contains(where: { seq <= $0 && $0 < last }) {
                    if builder.first == nil { continue } else { break }
                }
                if let first = builder.first, kept.contains(where: { first <= $0 && $0 < last }) { break }
                let values = try ticks.withBlob(5) { try TickValues.decode($0, packing: ticks.int64(6), count: members.count) }
                builder.add(
                    tick: seq, step: UInt64(bitPattern: ticks.int64(3)), wallclock: ticks.int64(4),
                    set: ticks.int64(2), members: members, values: values)
            }
            ticks.reset()
            // A reader close behind would otherwise have the head compacted into many small
            // blocks, a few ticks each: a stretch it cuts waits until it is half full.
            if waitsForReader && !idle && builder.ticks.count < ticksPerBlock / 2 { continue }
            if let plan = builder.plan() { plans.append(plan) }
        }
        return plans
    }

    /// The machine's series as agents before the head wrote them (schema 5 and older): a block
    /// a point. Each series' runs of small blocks, in seq order, become one block at the seq of the
    /// run's last, under the same rules for cursors as the head. `blocks_compacted_through` (in
    /// `meta`) keeps how far the blocks were read, so each is read once.
    static func smallBlockPlans(
        ticksPerBlock: Int, idleBefore: Int64, readers: OutboxReaders, connection: Connection
    ) throws -> (plans: [CompactionPlan], scannedThrough: Int64?) {
        let start = try metaValue("blocks_compacted_through", connection) ?? 0
        let hostSeries = try connection.statement("SELECT count(*) FROM series WHERE parent_id = 'host'")
        defer { hostSeries.reset() }
        let seriesCount = try hostSeries.step() ? Int(hostSeries.int64(0)) : 0
        guard seriesCount > 0 else { return ([], nil) }
        // About a block's worth of points for each series, at most 500,000 blocks read at once.
        let limit = min(ticksPerBlock * seriesCount, 500_000)
        let blocks = try connection.statement("""
            SELECT b.seq, b.series_id, b.count, b.wallclock_max, b.data FROM metric_blocks b CROSS JOIN series s ON s.id = b.series_id
            WHERE b.seq > ? AND s.parent_id = 'host' ORDER BY b.seq LIMIT ?
            """)
        defer { blocks.reset() }
        blocks.bind([start, Int64(limit)])
        let (running, kept) = try cursors(readers: readers, connection: connection)
        var runs: [Int64: (first: Int64, seqs: [Int64], columns: MetricColumns)] = [:]
        var plans: [CompactionPlan] = []
        func close(_ id: Int64) {
            guard let run = runs.removeValue(forKey: id), run.seqs.count > 1 else { return }
            let last = run.seqs.last!
            plans.append(CompactionPlan(
                ticks: [], replacedBlocks: run.seqs, first: run.first, last: last,
                blocks: [EncodedBlock(seq: last, seriesID: id, columns: run.columns)]))
        }
        var through: Int64?
        while try blocks.step() {
            let (seq, id) = (blocks.int64(0), blocks.int64(1))
            // Blocks are read in seq order: one a reader has not passed ends the reading.
            guard running.allSatisfy({ seq <= $0 }) else { break }
            // A large block (compacted already) is left as it is, and ends its series' run.
            if blocks.int64(2) >= 16 {
                close(id)
                through = seq
                continue
            }
            // A small one still recent (a stretch the head compacted when sampling stopped) ends
            // the reading too: a later one may follow it.
            guard blocks.int64(3) < idleBefore else { break }
            through = seq
            if let run = runs[id], kept.contains(where: { run.first <= $0 && $0 < seq }) { close(id) }
            var run = runs[id] ?? (seq, [], MetricColumns())
            try blocks.withBlob(4) { try MetricBlock.decode($0, into: &run.columns) }
            run.seqs.append(seq)
            runs[id] = run
        }
        for id in Array(runs.keys) { close(id) }
        // Every run read is merged: the next reading starts after the last block read.
        return (plans, through)
    }

    /// Replaces the stretch's ticks by its blocks, if the ticks are all still there and no cursor
    /// moved into it meanwhile; else throws StretchChanged and the job changes nothing.
    static func commit(_ plan: CompactionPlan, readers: OutboxReaders, context: WriteContext) throws {
        let connection = context.connection
        let (running, kept) = try cursors(readers: readers, connection: connection)
        guard running.allSatisfy({ plan.last <= $0 }), !kept.contains(where: { plan.first <= $0 && $0 < plan.last }) else {
            throw StretchChanged()
        }
        // A job of its own, not a tick's: its commit stores the sequence counter, which the
        // removed ticks' rows no longer tell (Store.committedSequence).
        for (table, rows) in [("ticks", plan.ticks), ("metric_blocks", plan.replacedBlocks)] {
            let delete = try connection.statement("DELETE FROM \(table) WHERE seq = ?")
            for seq in rows {
                delete.bind(1, seq)
                try delete.run()
                guard connection.changes == 1 else { throw StretchChanged() }
            }
        }
        let insert = try connection.statement("""
            INSERT INTO metric_blocks (seq, series_id, count, step_min, step_max, wallclock_min, wallclock_max, data)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for block in plan.blocks {
            insert.bind(1, block.seq)
            insert.bind(2, block.seriesID)
            insert.bind(3, Int64(block.count))
            insert.bind(4, block.stepMin)
            insert.bind(5, block.stepMax)
            insert.bind(6, block.wallclockMin)
            insert.bind(7, block.wallclockMax)
            insert.bind(8, blob: block.data)
            try insert.run()
        }
    }
}

/// Gathers a stretch's ticks into a column per series, then encodes them. The ticks' steps and
/// wallclocks are kept once for the stretch, and a series in every tick (most are) takes them
/// whole, shared: appending each tick's step and wallclock to each series' own columns, a large
/// node's 2,000 series three growing arrays each, was a third of compaction's CPU in perf.
struct StretchBuilder {
    var first: Int64?
    private var last: Int64 = 0
    private(set) var ticks: [Int64] = []
    private var steps: [UInt64] = []
    private var wallclocks: [Int64] = []
    /// The ticks a stretch is read up to: room reserved for as many values a series met at the first.
    private let capacity: Int
    /// A column per series, in the order first met, and where each series' column is.
    private var ids: [Int64] = []
    private var columns: [Column] = []
    private var slot: [Int64: Int] = [:]
    /// The slots of each set's members, found once a set (the ticks of a stretch mostly share
    /// one or two): no lookup a point (perf had the dictionary's hashing on top).
    private var setSlots: [Int64: [Int]] = [:]

    /// One series' values, and which of the stretch's ticks they are of: each tick from `start`
    /// on, until a tick without the series (a sensor on a slower cadence) lists them in `indices`.
    private struct Column {
        var values: [Double] = []
        var start: Int
        var indices: [Int]?
        /// The sequence number of its last point: its block's.
        var lastSeq: Int64 = 0

        mutating func add(_ value: Double, tick: Int, seq: Int64) {
            if indices == nil, start + values.count != tick { indices = Array(start..<start + values.count) }
            indices?.append(tick)
            values.append(value)
            lastSeq = seq
        }
    }

    /// `capacity`: the most ticks the stretch will have.
    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        ticks.reserveCapacity(self.capacity)
        steps.reserveCapacity(self.capacity)
        wallclocks.reserveCapacity(self.capacity)
    }

    mutating func add(
        tick seq: Int64, step: UInt64, wallclock: Int64, set: Int64, members: [Int64], values: [Double]
    ) {
        first = first ?? seq
        let tick = ticks.count
        ticks.append(seq)
        steps.append(step)
        wallclocks.append(wallclock)
        let slots = setSlots[set] ?? members.map { id in
            if let known = slot[id] { return known }
            slot[id] = columns.count
            ids.append(id)
            var column = Column(start: tick)
            // A series met at the first tick is mostly in every one; one met later may be
            // short-lived (a process's series), and grows as it goes.
            if tick == 0 { column.values.reserveCapacity(capacity) }
            columns.append(column)
            return columns.count - 1
        }
        setSlots[set] = slots
        for (index, slot) in slots.enumerated() {
            columns[slot].add(values[index], tick: tick, seq: seq + Int64(index))
        }
        last = seq + Int64(members.count) - 1
    }

    func plan() -> Store.CompactionPlan? {
        guard let first else { return nil }
        let blocks = columns.indices.map {
            Store.EncodedBlock(seq: columns[$0].lastSeq, seriesID: ids[$0], columns: points(of: columns[$0]))
        }
        return Store.CompactionPlan(ticks: ticks, first: first, last: last, blocks: blocks.sorted { $0.seq < $1.seq })
    }

    /// A series' values with the steps and wallclocks of their ticks: the stretch's own arrays,
    /// not copied, for a series in every tick.
    private func points(of column: Column) -> MetricColumns {
        var points = MetricColumns()
        if let indices = column.indices {
            points.steps = indices.map { steps[$0] }
            points.wallclocks = indices.map { wallclocks[$0] }
        } else if column.start == 0 && column.values.count == ticks.count {
            points.steps = steps
            points.wallclocks = wallclocks
        } else {
            let range = column.start..<column.start + column.values.count
            points.steps = Array(steps[range])
            points.wallclocks = Array(wallclocks[range])
        }
        points.values = column.values
        return points
    }
}
