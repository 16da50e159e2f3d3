import ArgumentParser
import BoxcarClient
import BoxcarModel
import BoxcarStore
import GRPCCore

/// Where the read commands get their data: the running agent, or its database file.
struct SourceOptions: ParsableArguments {
    @Option(help: "Read this database file directly (read-only) instead of asking the agent.")
    var db: String?

    @Option(help: "The agent's socket. Default: $BOXCAR_SOCKET, else the agent's default.")
    var socket: String?

    @Flag(help: "Print JSON for machines instead of tables for people.")
    var json = false

    /// Runs `body` against the chosen source, turning failures into messages a person can act on.
    func withSource<R: Sendable>(_ body: (any DataSource) async throws -> R) async throws -> R {
        if let db {
            let store: Store
            do {
                store = try Store.openReadOnly(path: db)
            } catch {
                throw CLIError("cannot read the database \(db): \(describe(error))")
            }
            do {
                return try await body(DatabaseSource(store: store))
            } catch {
                throw CLIError(describe(error))
            }
        }
        let path = socket ?? Defaults.environment["BOXCAR_SOCKET"] ?? Defaults.socketPath
        do {
            return try await AgentClient.with(.unixSocket(path)) { client in
                try await body(AgentSource(client: client))
            }
        } catch let error as RPCError where error.code == .unavailable {
            throw CLIError(
                "no agent answers on \(path): start one with `boxcar agent`, or read a database file with --db PATH")
        } catch {
            throw CLIError(describe(error))
        }
    }
}

protocol DataSource: Sendable {
    func experiments(namespace: String?) async throws -> [Experiment]
    func metrics(parentID: String, keys: [String]?) async throws -> [(key: String, columns: MetricColumns)]
    func events(parentID: String) async throws -> [Event]
    func files(parentID: String) async throws -> [FileRecord]
}

struct AgentSource: DataSource {
    let client: AgentClient

    func experiments(namespace: String?) async throws -> [Experiment] {
        try await client.experiments(namespace: namespace)
    }

    func metrics(parentID: String, keys: [String]?) async throws -> [(key: String, columns: MetricColumns)] {
        try await client.metrics(parentID: parentID, keys: keys)
    }

    func events(parentID: String) async throws -> [Event] {
        try await client.events(parentID: parentID)
    }

    func files(parentID: String) async throws -> [FileRecord] {
        try await client.files(parentID: parentID)
    }
}

struct DatabaseSource: DataSource {
    let store: Store

    func experiments(namespace: String?) async throws -> [Experiment] {
        try await store.experiments(namespace: namespace)
    }

    func metrics(parentID: String, keys: [String]?) async throws -> [(key: String, columns: MetricColumns)] {
        try await store.metrics(parentID: parentID, keys: keys)
    }

    func events(parentID: String) async throws -> [Event] {
        try await store.events(parentID: parentID)
    }

    func files(parentID: String) async throws -> [FileRecord] {
        try await store.files(parentID: parentID)
    }
}
