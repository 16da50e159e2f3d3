#if canImport(Glibc)
import Glibc
#endif
import BoxcarModel

/// What a write job sees: the writer's connection inside an open transaction, the sequence
/// counter, and caches of ids known to exist. Only the writer thread touches it.
///
/// Every record a job stores takes the next sequence number, so the store reads as an outbox
/// ordered by `seq`. Numbers taken by a job that is rolled back are skipped, never reused.
public final class WriteContext {
    let connection: Connection
    private(set) var sequence: Int64

    /// Parents known to exist, and series ids by (parent, key). A job's additions are journaled so
    /// that rolling the job back forgets them too.
    private var knownParents: Set<String> = []
    private var seriesIDs: [SeriesName: Int64] = [:]
    private var journal: [SeriesName?] = []
    private var parentJournal: [String] = []
    /// Series per parent, counted once and kept up to date, for the cardinality limit; the
    /// parents a job added series to are journaled like the ids.
    private var seriesCounts: [String: Int] = [:]
    private var countJournal: [String] = []
    /// Series sets by their members (Store+Head.swift). Forgotten whole when a job is rolled back:
    /// a new set is rare, a rollback rarer.
    private var seriesSets: [[Int64]: Int64] = [:]
    /// The series of each parent's last few ticks, by their keys: a sampler's ticks mostly bring
    /// the same keys in the same order, and comparing them costs less than looking each up.
    private var recentTicks: [String: [(fingerprint: Int, keys: [String], members: [Int64], setID: Int64)]] = [:]
    let maxSeriesPerParent = Limits.standard.maxSeriesPerParent

    struct SeriesName: Hashable {
        var parentID: String
        var key: String
    }

    /// Whether the next commit stores the sequence counter in `meta`: not while the writes since
    /// the last one are ticks of the head alone, whose rows say how far they took it
    /// (`Store.committedSequence`). Numbers a refused write took are stored, so that what the
    /// database says was committed is always the writer's `lastSequence`.
    /// That is a page fewer in the WAL a tick (3 → 2 on this machine's 75 series, 6.4 → 5.4 on
    /// the large node's 2,062), and the UPDATE: the 75 series' writer went from 59 to 50 µs a tick
    /// (`boxcar-bench storage-host`, medians of 8 run alternately).
    private var storesSequence = false
    /// Set by the job running when all it stores is a tick of the head (Store+Head.swift).
    var jobStoresOnlyATick = false
    /// The counter when the running job began: a refused job that took numbers has them stored.
    private var sequenceBeforeJob: Int64 = 0

    init(connection: Connection) throws {
        self.connection = connection
        sequence = try Store.committedSequence(connection)
    }

    func nextSequence() -> Int64 {
        sequence += 1
        return sequence
    }

    /// Numbering goes on after `seq` (numbers an upstream already holds from before a loss).
    func advanceSequence(past seq: Int64) {
        sequence = max(sequence, seq)
    }

    // MARK: Transactions

    // The statements of every group and job are prepared once: parsing them again each time
    // was a few microseconds of every tick's write.
    func begin() throws {
        try connection.statement("BEGIN IMMEDIATE").run()
    }

    func savepoint() throws {
        jobStoresOnlyATick = false
        sequenceBeforeJob = sequence
        journal.removeAll(keepingCapacity: true)
        parentJournal.removeAll(keepingCapacity: true)
        countJournal.removeAll(keepingCapacity: true)
        try connection.statement("SAVEPOINT job").run()
    }

    func release() throws {
        try connection.statement("RELEASE job").run()
        if !jobStoresOnlyATick { storesSequence = true }
    }

    func rollbackToSavepoint() {
        // (A tick refused for its parent or its series limit takes none: a trainer stuck at its
        // limit does not store the counter every tick.)
        if sequence != sequenceBeforeJob { storesSequence = true }
        try? connection.execute("ROLLBACK TO job")
        try? connection.execute("RELEASE job")
        for name in journal.compactMap({ $0 }) { seriesIDs[name] = nil }
        for id in parentJournal { knownParents.remove(id) }
        for parent in countJournal { seriesCounts[parent]? -= 1 }
        seriesSets.removeAll()
        recentTicks.removeAll()
    }

    /// False once SQLite has rolled the transaction back on its own (a full disk, an I/O error).
    var transactionIsOpen: Bool { !connection.isAutocommit }

    func commit() throws {
        if storesSequence {
            let statement = try connection.statement("UPDATE meta SET value = ? WHERE key = 'sequence'")
            statement.bind(1, sequence)
            try statement.run()
        }
        try connection.statement("COMMIT").run()
        storesSequence = false
    }

    /// After a failed commit nothing of the group is stored: forget every cached id.
    func rollbackTransaction() {
        storesSequence = true
        try? connection.execute("ROLLBACK")
        knownParents.removeAll()
        seriesIDs.removeAll()
        seriesCounts.removeAll()
        seriesSets.removeAll()
        recentTicks.removeAll()
    }

    // MARK: Objects and parents

    /// Registers a new object id so that later writes may name it as their parent.
    func registerObject(id: String, kind: String, namespace: String, seq: Int64) throws {
        let statement = try connection.statement(
            "INSERT INTO objects (id, kind, namespace, seq) VALUES (?, ?, ?, ?)")
        statement.bind([id, kind, namespace, seq])
        try statement.run()
        knownParents.insert(id)
        parentJournal.append(id)
    }

    func objectExists(_ id: String) throws -> Bool {
        if knownParents.contains(id) { return true }
        let statement = try connection.statement("SELECT 1 FROM objects WHERE id = ?")
        statement.bind(1, id)
        let found = try statement.step()
        statement.reset()
        if found { knownParents.insert(id) }
        return found
    }

    /// Throws NotFoundError unless `id` names an object.
    func requireParent(_ id: String, _ field: String = "parent_id") throws {
        guard try objectExists(id) else {
            throw NotFoundError("\(field) \(id) names no experiment, checkpoint, model, version or file")
        }
    }

    // MARK: Series

    func seriesID(parentID: String, key: String) throws -> Int64 {
        let name = SeriesName(parentID: parentID, key: key)
        if let id = seriesIDs[name] { return id }
        let select = try connection.statement("SELECT id FROM series WHERE parent_id = ? AND key = ?")
        select.bind(1, parentID)
        select.bind(2, key)
        if try select.step() {
            let id = select.int64(0)
            select.reset()
            seriesIDs[name] = id
            return id
        }
        select.reset()
        try reserveSeries(parentID: parentID, key: key)
        let insert = try connection.statement("INSERT INTO series (parent_id, key) VALUES (?, ?)")
        insert.bind(1, parentID)
        insert.bind(2, key)
        try insert.run()
        let id = sqlite3LastInsertRowID()
        seriesIDs[name] = id
        journal.append(name)
        return id
    }

    /// The series ids of a tick's keys (made when new) and the id of their set.
    func tickSeries(parentID: String, keys: [String]) throws -> (members: [Int64], setID: Int64) {
        // Sets of as many keys are told apart by a few of them before all are compared: sets
        // that take turns differ in a run somewhere, and comparing 2,000 keys of each of them
        // up to that run was most of a large node's tick on the writer.
        let fingerprint = Self.fingerprint(keys)
        if let known = recentTicks[parentID]?.first(where: { $0.fingerprint == fingerprint && Self.same($0.keys, keys) }) {
            return (known.members, known.setID)
        }
        let members = try members(parentID: parentID, keys: keys)
        let setID = try seriesSetID(parentID: parentID, members: members)
        // Sensors on slower cadences make a few sets that take turns.
        var recent = recentTicks[parentID] ?? []
        if recent.count >= 16 { recent.removeFirst() }
        recent.append((fingerprint, keys, members, setID))
        recentTicks[parentID] = recent
        return (members, setID)
    }

    /// The number of keys and five of them, spread over the set, hashed.
    static func fingerprint(_ keys: [String]) -> Int {
        var hasher = Hasher()
        hasher.combine(keys.count)
        if !keys.isEmpty {
            for place in 0..<5 { hasher.combine(keys[(keys.count - 1) * place / 4]) }
        }
        return hasher.finalize()
    }

    /// Whether two lists of keys are equal. The sampler passes the very same strings tick after
    /// tick, so the lists are compared as bytes first: a String's bytes are its value, or a
    /// reference to its storage, which cannot change while both lists hold it. Compared key by
    /// key, a large node's 2,000 equal keys were a third of the writer's job a tick (`perf`).
    static func same(_ a: [String], _ b: [String]) -> Bool {
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        let sameBytes = a.withUnsafeBytes { a in b.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 } }
        return sameBytes || a == b
    }

    /// How far ahead in the longest recent set a key of a new set is looked for.
    static let lookahead = 64

    /// The series ids of a set not seen lately. Such a set (sensors due on other ticks than
    /// before) is mostly the longest recent one with a few runs of series left out or added:
    /// walking the two together finds each key among the next few of that one's, compared by
    /// identity (the sampler passes the same strings tick after tick), where hashing each of a
    /// large node's 2,000 keys to look it up was most of the writer's time a tick. A key not
    /// found there is looked up.
    private func members(parentID: String, keys: [String]) throws -> [Int64] {
        let reference = recentTicks[parentID]?.max { $0.keys.count < $1.keys.count }
        var members: [Int64] = []
        members.reserveCapacity(keys.count)
        var next = 0
        for key in keys {
            var found: Int?
            if let reference {
                var index = next
                while index < min(next + Self.lookahead, reference.keys.count) {
                    if reference.keys[index] == key {
                        found = index
                        break
                    }
                    index += 1
                }
            }
            if let found, let reference {
                members.append(reference.members[found])
                next = found + 1
            } else {
                members.append(try seriesID(parentID: parentID, key: key))
            }
        }
        return members
    }

    /// The id of the set of series `members` (in that order), of `parentID`; made when new.
    func seriesSetID(parentID: String, members: [Int64]) throws -> Int64 {
        if let id = seriesSets[members] { return id }
        // A trainer whose processes come and go makes a new set now and then: the cache keeps
        // the recent ones, not every set of a long run.
        if seriesSets.count >= 256 { seriesSets.removeAll(keepingCapacity: true) }
        let encoded = SeriesSet.encode(members)
        let select = try connection.statement("SELECT id FROM series_sets WHERE members = ?")
        select.bind(1, blob: encoded)
        defer { select.reset() }
        let id: Int64
        if try select.step() {
            id = select.int64(0)
        } else {
            let insert = try connection.statement("INSERT INTO series_sets (parent_id, members) VALUES (?, ?)")
            insert.bind(1, parentID)
            insert.bind(2, blob: encoded)
            try insert.run()
            id = sqlite3LastInsertRowID()
        }
        seriesSets[members] = id
        return id
    }

    /// Counts a new series of `parentID`, or refuses it past the limit. The machine's own series
    /// (`host`) have none: the sensors make them, so there are as many as the machine has
    /// devices, and refusing one would stop its sampling for good.
    private func reserveSeries(parentID: String, key: String) throws {
        guard parentID != Store.hostID else { return }
        let count: Int
        if let known = seriesCounts[parentID] {
            count = known
        } else {
            let statement = try connection.statement("SELECT count(*) FROM series WHERE parent_id = ?")
            statement.bind(1, parentID)
            count = try statement.step() ? Int(statement.int64(0)) : 0
            statement.reset()
        }
        guard count < maxSeriesPerParent else {
            seriesCounts[parentID] = count
            throw LimitExceededError(
                "\(parentID) already has \(count) series, the limit per experiment; a new key (\(key.prefix(64))) is refused")
        }
        seriesCounts[parentID] = count + 1
        countJournal.append(parentID)
    }

    func sqlite3LastInsertRowID() -> Int64 {
        lastInsertRowID(connection)
    }
}
