import BoxcarModel

/// Versioned schema migrations. `PRAGMA user_version` holds how many have run; each runs once,
/// in order, inside the transaction that bumps the version. Append new ones; never edit old ones.
enum Migrations {
    static let all: [String] = [
        // 1: the first schema.
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO meta (key, value) VALUES ('sequence', 0);

        -- Every object a parent_id may name, whatever its kind: one lookup answers NOT_FOUND.
        CREATE TABLE objects (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            namespace TEXT NOT NULL DEFAULT '',
            seq INTEGER NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE experiments (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            namespace TEXT NOT NULL,
            owner TEXT NOT NULL,
            framework INTEGER NOT NULL,
            task TEXT NOT NULL,
            external_id TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            updated_ns INTEGER NOT NULL,
            seq INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX experiments_namespace ON experiments (namespace, created_ns);

        CREATE TABLE models (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            owner TEXT NOT NULL,
            namespace TEXT NOT NULL,
            description TEXT NOT NULL,
            task TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            updated_ns INTEGER NOT NULL,
            seq INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX models_namespace ON models (namespace, created_ns);

        CREATE TABLE model_versions (
            id TEXT PRIMARY KEY,
            model_id TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            description TEXT NOT NULL,
            framework INTEGER NOT NULL,
            unique_tags TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            updated_ns INTEGER NOT NULL,
            seq INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX model_versions_model ON model_versions (model_id, seq);

        CREATE TABLE checkpoints (
            id TEXT PRIMARY KEY,
            experiment_id TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            metrics TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            updated_ns INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            UNIQUE (experiment_id, epoch)
        ) WITHOUT ROWID;

        -- Tracked files (blob NULL) and uploaded ones (blob = SHA-256 of the bytes held).
        CREATE TABLE files (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            parent_id TEXT NOT NULL,
            file_type INTEGER NOT NULL,
            checksum TEXT NOT NULL,
            path TEXT NOT NULL,
            blob TEXT,
            size INTEGER,
            created_ns INTEGER NOT NULL,
            updated_ns INTEGER NOT NULL
        );
        CREATE INDEX files_parent ON files (parent_id, seq);

        CREATE TABLE metadata (
            parent_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_ns INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (parent_id, key)
        ) WITHOUT ROWID;

        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            parent_id TEXT NOT NULL,
            name TEXT NOT NULL,
            source TEXT NOT NULL,
            wallclock_ns INTEGER NOT NULL,
            metadata TEXT NOT NULL,
            created_ns INTEGER NOT NULL
        );
        CREATE INDEX events_parent ON events (parent_id, wallclock_ns, seq);

        -- A series is (parent, key); its points live in blocks of packed columns, a row per
        -- series per write (see MetricBlock.swift).
        CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            parent_id TEXT NOT NULL,
            key TEXT NOT NULL,
            UNIQUE (parent_id, key)
        );

        CREATE TABLE metric_blocks (
            seq INTEGER PRIMARY KEY,
            series_id INTEGER NOT NULL,
            count INTEGER NOT NULL,
            step_min INTEGER NOT NULL,
            step_max INTEGER NOT NULL,
            wallclock_min INTEGER NOT NULL,
            wallclock_max INTEGER NOT NULL,
            data BLOB NOT NULL
        );
        CREATE INDEX metric_blocks_series ON metric_blocks (series_id, seq);

        CREATE TABLE attachments (
            seq INTEGER PRIMARY KEY,
            experiment_id TEXT NOT NULL,
            pid INTEGER NOT NULL,
            attached_ns INTEGER NOT NULL,
            detached_ns INTEGER
        );
        CREATE INDEX attachments_experiment ON attachments (experiment_id, pid);
        """,
        // 2: the machine itself, parent of the sampled host series ("host").
        """
        INSERT INTO objects (id, kind, namespace, seq) VALUES ('host', 'host', '', 0);
        """,
        // 3: an attached experiment reads the host's blocks of its windows, not all of them.
        """
        CREATE INDEX metric_blocks_wallclock ON metric_blocks (series_id, wallclock_max);
        """,
        // 4: who this database is to an upstream (Store+Identity.swift): each identity it has had,
        // the last one current.
        """
        CREATE TABLE identities (
            number INTEGER PRIMARY KEY,
            agent_id TEXT NOT NULL UNIQUE,
            machine_id TEXT NOT NULL,
            host_name TEXT NOT NULL,
            first_seq INTEGER NOT NULL,
            created_ns INTEGER NOT NULL
        );
        """,
        // 5: the outbox (Store+Outbox.swift). The forwarder reads every table by seq, so the
        // tables whose key is not their seq get an index on it; what the upstream acknowledged is
        // kept in `meta` ('forward_acked', 'forward_start'); records it refused, and ranges removed
        // before it acknowledged them, are kept to be counted and shown.
        """
        CREATE INDEX experiments_seq ON experiments (seq);
        CREATE INDEX models_seq ON models (seq);
        CREATE INDEX model_versions_seq ON model_versions (seq);
        CREATE INDEX checkpoints_seq ON checkpoints (seq);
        CREATE INDEX metadata_seq ON metadata (seq);

        CREATE TABLE forward_quarantine (
            seq INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            reason TEXT NOT NULL,
            quarantined_ns INTEGER NOT NULL
        );

        CREATE TABLE forward_skips (
            through_seq INTEGER PRIMARY KEY,
            from_seq INTEGER NOT NULL,
            records INTEGER NOT NULL,
            reason TEXT NOT NULL
        );
        """,
        // 6: the head (Store+Head.swift): a sampler tick of one parent is a row of `ticks`, its
        // values packed in the order of a series set; a tick of n values takes the n sequence
        // numbers seq … last_seq, one a point. Compaction (Store+Compaction.swift) rewrites ticks
        // into blocks of `metric_blocks`.
        """
        CREATE TABLE series_sets (
            id INTEGER PRIMARY KEY,
            parent_id TEXT NOT NULL,
            members BLOB NOT NULL UNIQUE
        );
        CREATE INDEX series_sets_parent ON series_sets (parent_id);

        CREATE TABLE ticks (
            seq INTEGER PRIMARY KEY,
            last_seq INTEGER NOT NULL,
            set_id INTEGER NOT NULL,
            step INTEGER NOT NULL,
            wallclock INTEGER NOT NULL,
            data BLOB NOT NULL
        );
        CREATE INDEX ticks_set ON ticks (set_id, wallclock);
        """,
        // 7: how a tick's values are laid out (TickValues): 0, 8 bytes each, as written before;
        // 1, each value's significant bytes after a 4-bit count.
        """
        ALTER TABLE ticks ADD COLUMN packing INTEGER NOT NULL DEFAULT 0;
        """,
        // 8: machine series under OpenTelemetry's names: `renameMachineSeries` renames the keys
        // (SeriesRenames); a series keeps its id, so its points, blocks and ticks stay its own.
        "SELECT 1",
        // 9: `meta`'s sequence counter may be behind the head's newest tick (a group of ticks alone
        // does not store it: Store.committedSequence). Nothing changes in the file; the version
        // keeps an older agent, which would number records again from the counter, off it.
        "SELECT 1",
    ]

    /// Migrations whose work is more than their SQL, by version.
    static let programs: [Int: @Sendable (Connection) throws -> Void] = [8: renameMachineSeries]

    /// Each series whose key has a newer name (`SeriesRenames`): its id, its key, the newer one.
    static func machineSeriesRenames(_ connection: Connection, table: String) throws -> [(id: Int64, old: String, new: String)] {
        let statement = try connection.statement("SELECT id, key FROM \(table) WHERE key >= 'system/' AND key < 'system0'")
        defer { statement.reset() }
        var renames: [(id: Int64, old: String, new: String)] = []
        while try statement.step() {
            let key = statement.string(1)
            if let current = SeriesRenames.current(key) { renames.append((statement.int64(0), key, current)) }
        }
        return renames
    }

    /// Renames in two passes, each key first to a placeholder no key has, so that a new name that
    /// was an old one's (`system.disk.io`: the rate before, the counter now) is free when it is
    /// taken. A key that some series of the same parent holds already (none the agent wrote)
    /// leaves that series its old key.
    static func renameMachineSeries(_ connection: Connection) throws {
        let renames = try machineSeriesRenames(connection, table: "series")
        let update = try connection.statement("UPDATE series SET key = ?1 WHERE id = ?2")
        for rename in renames {
            update.reset()
            update.bind([" renaming \(rename.id)", rename.id])
            _ = try update.step()
        }
        let taken = try connection.statement("SELECT 1 FROM series WHERE parent_id = (SELECT parent_id FROM series WHERE id = ?2) AND key = ?1")
        for rename in renames {
            taken.reset()
            taken.bind([rename.new, rename.id])
            let free = try !taken.step()
            taken.reset()
            update.reset()
            update.bind([free ? rename.new : rename.old, rename.id])
            _ = try update.step()
        }
    }

    /// The schema version of a database this program may use (0: a new, empty one). Refuses a
    /// file that is not a SQLite database, a SQLite database that is not Boxcar's, and one from a
    /// newer Boxcar, each left exactly as it was.
    static func checkedVersion(_ connection: Connection, path: String) throws -> Int {
        let version: Int
        let tables: Int
        let hasMeta: Bool
        do {
            version = try userVersion(connection)
            let statement = try connection.statement("SELECT count(*), count(CASE WHEN name = 'meta' THEN 1 END) FROM sqlite_master WHERE type = 'table'")
            defer { statement.reset() }
            _ = try statement.step()
            tables = Int(statement.int64(0))
            hasMeta = statement.int64(1) == 1
        } catch let error as SQLiteError {
            throw SQLiteError(code: error.code, message: "cannot use the database \(path): \(error.message); it is left as it is")
        }
        // Boxcar's schema starts with its `meta` table: a database with tables but without it
        // (whatever its user_version) is someone else's.
        if (version == 0 && tables > 0) || (version > 0 && !hasMeta) {
            throw SQLiteError(code: 1, message: "\(path) is a SQLite database but not a boxcar one; it is left as it is")
        }
        if version > all.count {
            throw SQLiteError(
                code: 1, message: "\(path) has schema version \(version), newer than this boxcar knows (\(all.count)); upgrade boxcar")
        }
        return version
    }

    /// Brings a database that `checkedVersion` took to the newest schema.
    /// A database an older agent writes, opened read-only (so not migrated: `boxcar … --db` of a
    /// newer boxcar beside a running older agent), read as the current schema sees it: what later
    /// migrations added stands in TEMP objects of the connection's own (which a read-only
    /// connection may make), named as what they stand for, found before the file's own.
    static func readAsCurrent(_ connection: Connection, version: Int) throws {
        if version < 6 {
            // Before the head: an empty one.
            try connection.execute("""
                CREATE TEMP TABLE series_sets (id INTEGER PRIMARY KEY, parent_id TEXT NOT NULL, members BLOB NOT NULL);
                CREATE TEMP TABLE ticks (
                    seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, set_id INTEGER NOT NULL, step INTEGER NOT NULL,
                    wallclock INTEGER NOT NULL, data BLOB NOT NULL, packing INTEGER NOT NULL DEFAULT 0);
                """)
        } else if version < 7 {
            // A head of 8 bytes a value.
            try connection.execute("CREATE TEMP VIEW ticks AS SELECT *, 0 AS packing FROM main.ticks")
        }
        if version < 8 {
            // The machine series under their current names: a copy of `series` (thousands of
            // rows at most), renamed as migration 8 renames them.
            try connection.execute("""
                CREATE TEMP TABLE series (id INTEGER PRIMARY KEY, parent_id TEXT NOT NULL, key TEXT NOT NULL, UNIQUE (parent_id, key));
                INSERT INTO temp.series SELECT id, parent_id, key FROM main.series;
                """)
            try renameMachineSeries(connection)
        }
    }

    static func migrate(_ connection: Connection) throws {
        let current = try userVersion(connection)
        for (index, sql) in all.enumerated().dropFirst(current) {
            try connection.execute("BEGIN IMMEDIATE")
            do {
                try connection.execute(sql)
                try programs[index + 1]?(connection)
                try connection.execute("PRAGMA user_version = \(index + 1)")
                try connection.execute("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    static func userVersion(_ connection: Connection) throws -> Int {
        let statement = try connection.statement("PRAGMA user_version")
        defer { statement.reset() }
        return try statement.step() ? Int(statement.int64(0)) : 0
    }
}
