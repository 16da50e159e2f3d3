import Foundation
import BoxcarModel
import Logging
import PostgresNIO

/// The collector's PostgreSQL schema (`boxcar`), migrated by the collector itself like the agent's
/// SQLite file: `boxcar.schema_migrations` lists the versions applied; each runs once, in order,
/// in one transaction with the version's row, under an advisory lock so that collectors starting
/// together take turns. Append new versions; never edit old ones.
///
/// Rows are the agent's rows, keyed by (agent_id, seq). The large tables (metric blocks, events,
/// files, attachments, skipped ranges, refused records) carry `agent_id` in every primary key and
/// unique index, so that on Citus they distribute by it as they are, each agent's rows and its
/// cursor (`agents`) on one node; the small ones (experiments, metadata, models, versions,
/// checkpoints) are reference tables there. Points and events are partitioned by day of their
/// wallclock (`Partitions`), with a default partition taking any time outside those made.
enum Schema {
    static let migrations: [String] = [
        // 1: the first schema.
        """
        CREATE TABLE boxcar.agents (
            agent_id uuid PRIMARY KEY,
            host text NOT NULL,
            machine_id text NOT NULL,
            labels jsonb NOT NULL,
            record_version integer NOT NULL,
            agent_version text NOT NULL,
            first_seq bigint NOT NULL,
            -- The last seq of this agent held here: moved in the transaction that writes the rows.
            acked_seq bigint NOT NULL,
            skipped_ranges bigint NOT NULL DEFAULT 0,
            skipped_records bigint NOT NULL DEFAULT 0,
            refused_records bigint NOT NULL DEFAULT 0,
            first_seen timestamptz NOT NULL DEFAULT now(),
            last_seen timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE boxcar.experiments (
            id text PRIMARY KEY,
            name text NOT NULL,
            namespace text NOT NULL,
            owner text NOT NULL,
            framework integer NOT NULL,
            task text NOT NULL,
            external_id text NOT NULL,
            created_ns bigint NOT NULL,
            updated_ns bigint NOT NULL
        );

        CREATE INDEX experiments_namespace ON boxcar.experiments (namespace, created_ns);

        -- Keys of experiments, models, versions, checkpoints and files; the last write wins.
        CREATE TABLE boxcar.metadata (
            parent_id text NOT NULL,
            key text NOT NULL,
            value text NOT NULL,
            updated_ns bigint NOT NULL,
            PRIMARY KEY (parent_id, key)
        );

        CREATE TABLE boxcar.models (
            id text PRIMARY KEY,
            name text NOT NULL,
            owner text NOT NULL,
            namespace text NOT NULL,
            description text NOT NULL,
            task text NOT NULL,
            created_ns bigint NOT NULL,
            updated_ns bigint NOT NULL
        );

        CREATE INDEX models_namespace ON boxcar.models (namespace, created_ns);

        CREATE TABLE boxcar.model_versions (
            id text PRIMARY KEY,
            model_id text NOT NULL,
            name text NOT NULL,
            version text NOT NULL,
            description text NOT NULL,
            framework integer NOT NULL,
            unique_tags text NOT NULL,
            created_ns bigint NOT NULL,
            updated_ns bigint NOT NULL
        );

        CREATE INDEX model_versions_model ON boxcar.model_versions (model_id, updated_ns);

        CREATE TABLE boxcar.checkpoints (
            id text PRIMARY KEY,
            experiment_id text NOT NULL,
            epoch bigint NOT NULL,
            metrics text NOT NULL,
            created_ns bigint NOT NULL,
            updated_ns bigint NOT NULL
        );

        CREATE INDEX checkpoints_experiment ON boxcar.checkpoints (experiment_id, epoch);

        -- A run of points of one series from one agent's write, in the agent's packed format
        -- (decoded by boxcar.decode_block for the views). A time range of one series across
        -- machines is a range of the (parent_id, key, wallclock_min) index.
        CREATE TABLE boxcar.metric_blocks (
            agent_id uuid NOT NULL,
            seq bigint NOT NULL,
            parent_id text NOT NULL,
            key text NOT NULL,
            count integer NOT NULL,
            step_min bigint NOT NULL,
            step_max bigint NOT NULL,
            wallclock_min bigint NOT NULL,
            wallclock_max bigint NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (agent_id, seq, wallclock_min)
        ) PARTITION BY RANGE (wallclock_min);

        CREATE INDEX metric_blocks_series ON boxcar.metric_blocks (parent_id, key, wallclock_min);

        CREATE TABLE boxcar.metric_blocks_default PARTITION OF boxcar.metric_blocks DEFAULT;

        CREATE TABLE boxcar.events (
            agent_id uuid NOT NULL,
            seq bigint NOT NULL,
            parent_id text NOT NULL,
            name text NOT NULL,
            source text NOT NULL,
            wallclock_ns bigint NOT NULL,
            metadata text NOT NULL,
            created_ns bigint NOT NULL,
            PRIMARY KEY (agent_id, seq, wallclock_ns)
        ) PARTITION BY RANGE (wallclock_ns);

        CREATE INDEX events_parent ON boxcar.events (parent_id, wallclock_ns);

        CREATE TABLE boxcar.events_default PARTITION OF boxcar.events DEFAULT;

        -- Tracked files (blob NULL) and uploaded ones (blob: the SHA-256 of bytes held under
        -- the collector's --artifacts directory).
        CREATE TABLE boxcar.files (
            agent_id uuid NOT NULL,
            id text NOT NULL,
            seq bigint NOT NULL,
            parent_id text NOT NULL,
            file_type integer NOT NULL,
            checksum text NOT NULL,
            path text NOT NULL,
            blob text,
            size bigint,
            created_ns bigint NOT NULL,
            updated_ns bigint NOT NULL,
            PRIMARY KEY (agent_id, id)
        );

        CREATE INDEX files_parent ON boxcar.files (parent_id, created_ns);

        CREATE INDEX files_id ON boxcar.files (id);

        CREATE TABLE boxcar.attachments (
            agent_id uuid NOT NULL,
            experiment_id text NOT NULL,
            pid integer NOT NULL,
            attached_ns bigint NOT NULL,
            detached_ns bigint,
            PRIMARY KEY (agent_id, experiment_id, pid, attached_ns)
        );

        CREATE INDEX attachments_experiment ON boxcar.attachments (experiment_id);

        -- Records an agent removed before they were acknowledged (its disk limit forced it).
        CREATE TABLE boxcar.skipped_ranges (
            agent_id uuid NOT NULL,
            from_seq bigint NOT NULL,
            through_seq bigint NOT NULL,
            records bigint NOT NULL,
            reason text NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (agent_id, through_seq)
        );

        -- Records refused as malformed: not stored, the agent keeps them in its quarantine.
        CREATE TABLE boxcar.refused_records (
            agent_id uuid NOT NULL,
            seq bigint NOT NULL,
            reason text NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (agent_id, seq)
        );

        -- The agent's packed block (MetricBlock.swift), decoded: float points only (a string or
        -- bytes point has a NULL value). Written for the views, not for speed.
        CREATE FUNCTION boxcar.decode_block(data bytea)
        RETURNS TABLE (step bigint, wallclock_ns bigint, value double precision)
        LANGUAGE plpgsql IMMUTABLE STRICT AS $body$
        DECLARE
            pos integer := 2;
            n integer;
            mixed boolean;
            kinds integer[];
            steps bigint[];
            walls bigint[];
            acc bigint;
            delta numeric;
            raw bigint;
            shift integer;
            b integer;
            i integer;
            len integer;
            exponent integer;
            mantissa bigint;
            result double precision;
        BEGIN
            IF get_byte(data, 0) <> 1 THEN
                RAISE EXCEPTION 'metric block version % is not known', get_byte(data, 0);
            END IF;
            mixed := get_byte(data, 1) = 1;
            -- A varint: 7 bits a byte, low first.
            raw := 0; shift := 0;
            LOOP
                b := get_byte(data, pos); pos := pos + 1;
                raw := raw | ((b & 127)::bigint << shift);
                EXIT WHEN b < 128;
                shift := shift + 7;
            END LOOP;
            n := raw;
            kinds := array_fill(0, ARRAY[n]);
            IF mixed THEN
                FOR i IN 1..n LOOP
                    kinds[i] := get_byte(data, pos); pos := pos + 1;
                END LOOP;
            END IF;
            steps := array_fill(0::bigint, ARRAY[n]);
            walls := array_fill(0::bigint, ARRAY[n]);
            FOR column_index IN 1..2 LOOP
                acc := 0;
                FOR i IN 1..n LOOP
                    raw := 0; shift := 0;
                    LOOP
                        b := get_byte(data, pos); pos := pos + 1;
                        raw := raw | ((b & 127)::bigint << shift);
                        EXIT WHEN b < 128;
                        shift := shift + 7;
                    END LOOP;
                    -- Zigzag: the sign in the lowest bit; deltas from the point before, adding
                    -- with wrap-around as the agent does (steps take the whole uint64 range,
                    -- stored as their bits).
                    delta := acc::numeric + (((raw >> 1) & 9223372036854775807) # (-(raw & 1)))::numeric;
                    IF delta > 9223372036854775807 THEN delta := delta - 18446744073709551616;
                    ELSIF delta < -9223372036854775808 THEN delta := delta + 18446744073709551616;
                    END IF;
                    acc := delta::bigint;
                    IF column_index = 1 THEN steps[i] := acc; ELSE walls[i] := acc; END IF;
                END LOOP;
            END LOOP;
            FOR i IN 1..n LOOP
                IF kinds[i] = 0 THEN
                    raw := 0;
                    FOR b IN 0..7 LOOP
                        raw := raw | (get_byte(data, pos + b)::bigint << (8 * b));
                    END LOOP;
                    pos := pos + 8;
                    exponent := ((raw >> 52) & 2047)::integer;
                    mantissa := raw & 4503599627370495;
                    IF exponent = 2047 THEN
                        result := CASE WHEN mantissa <> 0 THEN 'NaN'::float8 WHEN raw < 0 THEN '-Infinity'::float8 ELSE 'Infinity'::float8 END;
                    ELSIF exponent = 0 THEN
                        result := mantissa::float8 * power(2::float8, -1074);
                    ELSE
                        result := (mantissa + 4503599627370496)::float8 * power(2::float8, exponent - 1075);
                    END IF;
                    IF raw < 0 AND exponent <> 2047 THEN result := -result; END IF;
                    step := steps[i]; wallclock_ns := walls[i]; value := result;
                ELSE
                    raw := 0; shift := 0;
                    LOOP
                        b := get_byte(data, pos); pos := pos + 1;
                        raw := raw | ((b & 127)::bigint << shift);
                        EXIT WHEN b < 128;
                        shift := shift + 7;
                    END LOOP;
                    pos := pos + raw::integer;
                    step := steps[i]; wallclock_ns := walls[i]; value := NULL;
                END IF;
                RETURN NEXT;
            END LOOP;
        END
        $body$;

        -- For psql and dashboards: in `public`, so no search path is needed.
        CREATE VIEW public.boxcar_points AS
            SELECT a.host, b.parent_id, b.key, p.step,
                   to_timestamp(p.wallclock_ns / 1e9) AS time, p.value
            FROM boxcar.metric_blocks b
            JOIN boxcar.agents a ON a.agent_id = b.agent_id
            CROSS JOIN LATERAL boxcar.decode_block(b.data) p;

        CREATE VIEW public.boxcar_experiments AS
            SELECT id, name, namespace, owner, framework, task, external_id,
                   to_timestamp(created_ns / 1e9) AS created_at, to_timestamp(updated_ns / 1e9) AS updated_at
            FROM boxcar.experiments;

        CREATE VIEW public.boxcar_events AS
            SELECT a.host, e.parent_id, e.name, e.source, to_timestamp(e.wallclock_ns / 1e9) AS time,
                   e.metadata::jsonb AS metadata
            FROM boxcar.events e JOIN boxcar.agents a ON a.agent_id = e.agent_id;

        CREATE VIEW public.boxcar_metadata AS
            SELECT parent_id, key, value::jsonb AS value, to_timestamp(updated_ns / 1e9) AS updated_at
            FROM boxcar.metadata;

        CREATE VIEW public.boxcar_agents AS
            SELECT agent_id, host, machine_id, labels, acked_seq, skipped_ranges, skipped_records,
                   refused_records, first_seen, last_seen
            FROM boxcar.agents;
        """,
        // 2: an agent is bound to the named token it first forwarded with.
        """
        ALTER TABLE boxcar.agents ADD COLUMN token_name text;

        CREATE OR REPLACE VIEW public.boxcar_agents AS
            SELECT agent_id, host, machine_id, labels, acked_seq, skipped_ranges, skipped_records,
                   refused_records, first_seen, last_seen, token_name
            FROM boxcar.agents;
        """,
        // 3: machine series under OpenTelemetry's names (SeriesRenames): the keys already held
        // are renamed by `renameMachineSeries` (and those of agents older than record version 4
        // as they arrive, BatchWriter).
        "SELECT 1",
    ]

    /// Migrations whose work is more than their SQL, by version.
    static let programs: [Int: @Sendable (Transaction) async throws -> Void] = [3: renameMachineSeries]

    /// Each distinct machine series key that has a newer name gets it, in one statement (the
    /// whole table read once: no statement timeout, a large collector takes minutes once).
    @Sendable static func renameMachineSeries(_ transaction: Transaction) async throws {
        try await transaction.query("SET LOCAL statement_timeout = 0")
        var old: [String] = []
        var new: [String] = []
        for try await key in try await transaction.query(
            "SELECT DISTINCT key FROM boxcar.metric_blocks WHERE key LIKE 'system/%'"
        ).decode(String.self) {
            if let current = SeriesRenames.current(key) {
                old.append(key)
                new.append(current)
            }
        }
        guard !old.isEmpty else { return }
        try await transaction.query("""
            UPDATE boxcar.metric_blocks b SET key = r.new FROM unnest(\(old)::text[], \(new)::text[]) AS r(old, new)
            WHERE b.key = r.old
            """)
    }

    /// A migration's statements, one at a time (the extended protocol takes one per query): they
    /// end with a semicolon at the end of a line followed by an empty line, which no statement
    /// (a function's body included) has inside it.
    static func statements(_ sql: String) -> [String] {
        sql.components(separatedBy: ";\n\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .filter { !$0.isEmpty }
    }

    /// The tables that grow with the fleet (each distributed by `agent_id` on Citus).
    static let largeTables = ["metric_blocks", "events", "files", "attachments", "skipped_ranges", "refused_records"]

    /// An arbitrary constant: the advisory lock collectors take turns on while migrating.
    static let migrationLock: Int64 = 0x626f_7863_6172

    /// Brings the database to the newest schema; returns the version it was at.
    static func migrate(_ client: PostgresClient, logger: Logger) async throws -> Int {
        try await Transaction.run(client, logger: logger, deadline: .seconds(3600)) { transaction in
            try await transaction.query("SELECT pg_advisory_xact_lock(\(migrationLock))")
            try await transaction.query("CREATE SCHEMA IF NOT EXISTS boxcar")
            try await transaction.query("""
                CREATE TABLE IF NOT EXISTS boxcar.schema_migrations (
                    version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
                """)
            var current = 0
            for try await version in try await transaction.query(
                "SELECT coalesce(max(version), 0) FROM boxcar.schema_migrations"
            ).decode(Int.self) {
                current = version
            }
            guard current <= migrations.count else {
                throw SchemaError(
                    "the PostgreSQL schema is at version \(current), newer than this collector knows (\(migrations.count)); upgrade boxcar")
            }
            for (index, sql) in migrations.enumerated().dropFirst(current) {
                for statement in statements(sql) {
                    try await transaction.query(PostgresQuery(unsafeSQL: statement))
                }
                try await programs[index + 1]?(transaction)
                try await transaction.query("INSERT INTO boxcar.schema_migrations (version) VALUES (\(index + 1))")
            }
            return current
        }
    }
}

struct SchemaError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
