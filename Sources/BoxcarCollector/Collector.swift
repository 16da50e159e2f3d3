import BoxcarAPI
import BoxcarModel
import BoxcarStorage
import GRPCCore
import Logging
import PostgresNIO

// BoxcarCollector: `boxcar collector`, where a fleet's agents forward to. It writes what they send
// into PostgreSQL (postgres-nio, a connection pool), exactly once in effect (BatchWriter), into a
// schema it migrates itself (Schema) and partitions by day (Partitions), and reads it back as a
// RecordStore (PostgresStore) for the agent's own read services. It knows nothing of the agents'
// SQLite files; the process around it (flags, listeners, signals) is the executable's.

/// The collector's PostgreSQL side and its services.
public struct Collector: Sendable {
    let client: PostgresClient
    /// Where PostgreSQL is, without its password: for the log and Health.
    public let address: String
    public let artifacts: ArtifactStore
    let tokens: TokenFile?
    let logger: Logger
    public let version: String
    /// Agents connected, rows written, PostgreSQL's failures: for `--http`.
    public let statistics = CollectorStatistics()

    /// - Parameters:
    ///   - client: a pool whose `run()` the caller runs for as long as the collector serves.
    ///   - tokenFile: `--token-file`; nil: calls need no token (a unix socket, loopback).
    public init(
        client: PostgresClient, address: String, artifacts: ArtifactStore, tokenFile: String?, version: String,
        logger: Logger
    ) throws {
        self.client = client
        self.address = address
        self.artifacts = artifacts
        self.tokens = try tokenFile.map { try TokenFile(path: $0) }
        self.version = version
        self.logger = logger
    }

    /// Whether an `Authorization` header carries a token of the token file (any kind): what
    /// `--http`'s /metrics asks for when there is one. Without a token file, every caller.
    public func authorizes(_ header: String?) -> Bool {
        guard let tokens else { return true }
        return header.flatMap { tokens.entry(forBearer: $0) } != nil
    }

    /// The services to serve, and the interceptors every listener needs.
    public var services: [any RegistrableRPCService] {
        [CollectorService(
            writer: BatchWriter(client: client, artifacts: artifacts, logger: logger), artifacts: artifacts,
            tokens: tokens, version: version, logger: logger, statistics: statistics)]
    }

    /// Every record of the fleet, for the read services (`modelbox.ModelStore`, `boxcar.v1.Agent`):
    /// writes through it are refused.
    public var store: any RecordStore {
        PostgresStore(client: client, location: address, logger: logger)
    }

    public var interceptors: [any ServerInterceptor] {
        tokens.map { [TokenInterceptor(tokens: $0)] } ?? []
    }

    /// Migrates the schema and makes the partitions around today, trying again every few seconds
    /// while PostgreSQL cannot be reached (and saying so at once, then every tenth try); returns
    /// the schema version found. Each try first opens one connection of its own (`probe`): the
    /// pool would wait for PostgreSQL without a word.
    public func prepare(probe: PostgresConnection.Configuration) async throws -> Int {
        var attempt = 0
        while true {
            do {
                let connection = try await PostgresConnection.connect(configuration: probe, id: 0, logger: logger)
                try? await connection.close()
                let found = try await Schema.migrate(client, logger: logger)
                try await Partitions.prepare(client, now: WallClock.now(), logger: logger)
                if found < Schema.migrations.count {
                    logger.info("PostgreSQL schema migrated", metadata: ["from": "\(found)", "to": "\(Schema.migrations.count)"])
                }
                return found
            } catch let error as SchemaError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                attempt += 1
                let message = describePostgres(error)
                if attempt == 1 || attempt % 10 == 0 {
                    logger.warning("cannot reach PostgreSQL at \(address); retrying", metadata: ["error": "\(message)", "attempt": "\(attempt)"])
                }
                try await Task.sleep(for: .seconds(min(5, attempt)))
            }
        }
    }

    /// Keeps the day partitions made ahead of time, and drops those past `retention`: once an
    /// hour, until cancelled.
    public func maintain(retention: Duration?) async throws {
        while !Task.isCancelled {
            do {
                try await Partitions.prepare(client, now: WallClock.now(), logger: logger)
                if let retention {
                    let cutoff = WallClock.now() - Int64(retention.components.seconds) * 1_000_000_000
                    let dropped = try await Partitions.dropOlder(than: cutoff, client, logger: logger)
                    if !dropped.isEmpty { logger.info("retention dropped partitions", metadata: ["partitions": "\(dropped.joined(separator: ", "))"]) }
                    let deleted = try await Partitions.deleteOlderDefaults(than: cutoff, client, logger: logger)
                    if deleted > 0 { logger.info("retention deleted rows of the default partitions", metadata: ["rows": "\(deleted)"]) }
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("partition upkeep failed; trying again in an hour", metadata: ["error": "\(describePostgres(error))"])
            }
            try await Task.sleep(for: .seconds(3600))
        }
    }
}
