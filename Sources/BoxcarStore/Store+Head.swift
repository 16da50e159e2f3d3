import BoxcarModel
import BoxcarStorage

/// The head: the sampler's ticks as they come, before compaction (Store+Compaction.swift)
/// rewrites them into a compressed block per series.
///
/// A tick of one parent is one row of `ticks`: its values packed in the order of a series set
/// (the series it had, listed once in `series_sets`), so that a tick costs one row whatever the
/// number of series, and is committed like any write. Each value still takes a sequence number
/// of its own (a tick of n values takes `seq` … `last_seq`, in the set's order): the outbox ships
/// each value as a point of its series at that number, and compaction gives each series' block
/// the number of its last point, so a reader of the outbox by seq neither loses nor repeats a
/// point when the head is rewritten.
extension Store {
    /// One sampling of one parent's series: every value read at one time.
    public struct Tick: Sendable {
        public var parentID: String
        public var step: UInt64
        public var wallclock: Int64
        public var keys: [String]
        public var values: [Double]
        /// Events of the same moment (a GPU's XID error), stored with the tick.
        public var events: [Event]

        public init(parentID: String, step: UInt64, wallclock: Int64, keys: [String] = [], values: [Double] = [], events: [Event] = []) {
            precondition(keys.count == values.count, "a tick has one value per key")
            self.parentID = parentID
            self.step = step
            self.wallclock = wallclock
            self.keys = keys
            self.values = values
            self.events = events
        }
    }

    /// Stores a tick whole, or nothing of it (an experiment past its series limit loses the tick).
    public func appendTick(_ tick: Tick) async throws {
        try await write(try Self.tickWrite(tick))
    }

    /// Stores each tick as a write of its own (one refused loses only itself), handed to the
    /// writer together so that they wake it once and commit in one group; throws the first
    /// refusal once every tick is done.
    public func appendTicks(_ ticks: [Tick]) async throws {
        guard let writer else { throw ReadOnlyError(location: path) }
        var pending: [Pending<Void>] = []
        var failure: (any Error)?
        for tick in ticks {
            do { pending.append(try await writer.submit(try Self.tickWrite(tick))) } catch { failure = failure ?? error }
        }
        for write in pending {
            do { try await write.value() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    private static func tickWrite(_ tick: Tick) throws -> @Sendable (WriteContext) throws -> Void {
        let events = try tick.events.map { ($0, try $0.metadata.jsonText()) }
        // Packed here, by the caller: the writer is the one thread every write waits for, and the
        // values need nothing of the database (a large node's 2,000 were 4 % of its time a tick).
        let data = tick.keys.isEmpty ? [] : TickValues.encode(tick.values)
        return { context in
            // Its events take numbers past the row's last_seq: those are kept in `meta`.
            context.jobStoresOnlyATick = events.isEmpty
            try context.requireParent(tick.parentID)
            if !tick.keys.isEmpty {
                let (members, setID) = try context.tickSeries(parentID: tick.parentID, keys: tick.keys)
                let first = context.nextSequence()
                context.advanceSequence(past: first + Int64(members.count) - 1)
                let statement = try context.connection.statement(
                    "INSERT INTO ticks (seq, last_seq, set_id, step, wallclock, data, packing) VALUES (?, ?, ?, ?, ?, ?, ?)")
                statement.bind(1, first)
                statement.bind(2, context.sequence)
                statement.bind(3, setID)
                statement.bind(4, Int64(bitPattern: tick.step))
                statement.bind(5, tick.wallclock)
                statement.bind(6, blob: data)
                statement.bind(7, TickValues.trimmed)
                try statement.run()
            }
            let now = WallClock.now()
            for (event, metadataText) in events {
                try Self.insertEvent(context, event, metadataText: metadataText, now: now)
            }
        }
    }

    /// The last sequence number committed, as `connection`'s snapshot has it: the counter in
    /// `meta`, or past it the last number of the head's newest tick. A group of writes that
    /// stores only ticks leaves the counter as it was (their rows say how far they took it);
    /// every other write stores it, compaction and retention too, which remove ticks, so a number
    /// committed once is never handed out again.
    static func committedSequence(_ connection: Connection) throws -> Int64 {
        let statement = try connection.statement("""
            SELECT max(coalesce((SELECT value FROM meta WHERE key = 'sequence'), 0),
                       coalesce((SELECT last_seq FROM ticks ORDER BY seq DESC LIMIT 1), 0))
            """)
        defer { statement.reset() }
        _ = try statement.step()
        return statement.int64(0)
    }

    /// The series sets of a parent's ticks in the head: each set's id and its members' series ids,
    /// in value order. (A trainer whose processes come and go has had many sets; the head's few
    /// are the ones read.)
    static func seriesSets(parentID: String, connection: Connection) throws -> [(id: Int64, members: [Int64])] {
        let statement = try connection.statement(
            "SELECT id, members FROM series_sets WHERE parent_id = ? AND id IN (SELECT DISTINCT set_id FROM ticks)")
        defer { statement.reset() }
        statement.bind(1, parentID)
        var sets: [(id: Int64, members: [Int64])] = []
        while try statement.step() {
            sets.append((statement.int64(0), try statement.withBlob(1) { try SeriesSet.decode($0) }))
        }
        return sets
    }

    /// The head's points of the parent's series in `seriesIDs`, within the wallclocks `lower…upper`,
    /// by series id, in tick order. The ticks of all the parent's sets are read in one pass by
    /// seq: sensors on slower cadences make sets that take turns, and a series read set by set
    /// came back out of order (sorted again for every read).
    static func headPoints(
        parentID: String, seriesIDs: Set<Int64>, lower: Int64, upper: Int64, connection: Connection
    ) throws -> [Int64: MetricColumns] {
        // A column per series wanted, and for each set where its members' values go: no lookup
        // by series id a point.
        var slots: [Int64: Int] = [:]
        var wanted: [Int64: (count: Int, members: [(index: Int, slot: Int)])] = [:]
        for set in try seriesSets(parentID: parentID, connection: connection) {
            let members = set.members.enumerated().filter { seriesIDs.contains($0.element) }.map { index, id in
                (index: index, slot: slots[id] ?? { slots[id] = slots.count; return slots.count - 1 }())
            }
            if !members.isEmpty { wanted[set.id] = (set.members.count, members) }
        }
        guard !wanted.isEmpty else { return [:] }
        var columns = [MetricColumns](repeating: MetricColumns(), count: slots.count)
        let ticks = try connection.statement("""
            SELECT set_id, step, wallclock, data, packing FROM ticks
            WHERE set_id IN (SELECT id FROM series_sets WHERE parent_id = ?) AND wallclock >= ? AND wallclock <= ? ORDER BY seq
            """)
        defer { ticks.reset() }
        ticks.bind(1, parentID)
        ticks.bind(2, lower)
        ticks.bind(3, upper)
        while try ticks.step() {
            guard let set = wanted[ticks.int64(0)] else { continue }
            let step = UInt64(bitPattern: ticks.int64(1))
            let wallclock = ticks.int64(2)
            let values = try ticks.withBlob(3) { try TickValues.decode($0, packing: ticks.int64(4), count: set.count) }
            for (index, slot) in set.members {
                columns[slot].append(step: step, wallclock: wallclock, value: values[index])
            }
        }
        return slots.filter { !columns[$0.value].isEmpty }.mapValues { columns[$0] }
    }

    /// The head's first and last step of one series within the wallclocks `lower…upper`, as stored
    /// (signed); nil when the head holds none.
    static func headStepBounds(
        parentID: String, seriesID: Int64, lower: Int64, upper: Int64, connection: Connection
    ) throws -> (min: Int64, max: Int64)? {
        let statement = try connection.statement(
            "SELECT min(step), max(step) FROM ticks WHERE set_id = ? AND wallclock >= ? AND wallclock <= ?")
        defer { statement.reset() }
        var bounds: (min: Int64, max: Int64)?
        for set in try seriesSets(parentID: parentID, connection: connection) where set.members.contains(seriesID) {
            statement.bind([set.id, lower, upper])
            if try statement.step(), let low = statement.optionalInt64(0), let high = statement.optionalInt64(1) {
                bounds = bounds.map { (Swift.min($0.min, low), Swift.max($0.max, high)) } ?? (low, high)
            }
            statement.reset()
        }
        return bounds
    }
}

/// A tick or series set that does not read as written (a damaged file).
struct CorruptHead: Error, CustomStringConvertible {
    var description: String { "a tick of the head is corrupt" }
}

/// A tick's values as stored, in its set's order. A tick holds every series of the machine
/// (2,000 on a large node), most of them 0 or a small whole number whose double ends in zero
/// bytes: each value keeps only its bit pattern's bytes up to the last that is not zero (a 4-bit
/// count a value, then the bytes, little-endian), about a third of 8 bytes each on the traced
/// machine. The writer's commit, the head's pages and compaction's reads all shrink with it.
enum TickValues {
    /// 8 bytes each, little-endian: what agents before schema 7 wrote.
    static let plain: Int64 = 0
    /// Each value's significant bytes after its count.
    static let trimmed: Int64 = 1

    /// `values` laid out `trimmed`.
    static func encode(_ values: [Double]) -> [UInt8] {
        let counts = (values.count + 1) / 2
        return [UInt8](unsafeUninitializedCapacity: counts + 8 * values.count) { buffer, size in
            for index in 0..<counts { buffer[index] = 0 }
            var offset = counts
            for (index, value) in values.enumerated() {
                let bits = value.bitPattern
                let kept = bits == 0 ? 0 : 8 - bits.trailingZeroBitCount / 8
                buffer[index / 2] |= UInt8(kept) << (4 * (index % 2))
                var rest = bits >> (8 * (8 - kept))
                for _ in 0..<kept {
                    buffer[offset] = UInt8(truncatingIfNeeded: rest)
                    rest >>= 8
                    offset += 1
                }
            }
            size = offset
        }
    }

    /// The `count` values of a tick laid out as `packing` says; throws on any other length.
    static func decode(_ data: UnsafeRawBufferPointer, packing: Int64, count: Int) throws -> [Double] {
        switch packing {
        case plain:
            guard data.count == 8 * count else { throw CorruptHead() }
            return (0..<count).map { Double(bitPattern: UInt64(littleEndian: data.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
        case trimmed:
            let counts = (count + 1) / 2
            guard data.count >= counts else { throw CorruptHead() }
            var offset = counts
            var values: [Double] = []
            values.reserveCapacity(count)
            for index in 0..<count {
                let kept = Int(data[index / 2] >> (4 * (index % 2)) & 0x0F)
                guard kept <= 8, offset + kept <= data.count else { throw CorruptHead() }
                var bits: UInt64 = 0
                for byte in 0..<kept { bits |= UInt64(data[offset + byte]) << (8 * byte) }
                offset += kept
                values.append(Double(bitPattern: bits << (8 * (8 - kept))))
            }
            guard offset == data.count else { throw CorruptHead() }
            return values
        default:
            throw CorruptHead()
        }
    }
}

/// A series set's members as stored: their series ids, as varints.
enum SeriesSet {
    static func encode(_ members: [Int64]) -> [UInt8] {
        var out: [UInt8] = []
        for id in members { Varint.append(UInt64(bitPattern: id), to: &out) }
        return out
    }

    static func decode(_ data: UnsafeRawBufferPointer) throws -> [Int64] {
        var members: [Int64] = []
        var value: UInt64 = 0
        var shift: UInt64 = 0
        for byte in data {
            guard shift < 64 else { throw CorruptHead() }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                members.append(Int64(bitPattern: value))
                value = 0
                shift = 0
            } else {
                shift += 7
            }
        }
        guard shift == 0 else { throw CorruptHead() }
        return members
    }
}
