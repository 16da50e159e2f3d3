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

    /// Prints `records` as JSON for machines (`--json`), else as a table of `columns` for people.
    func output<Record: Encodable>(_ records: [Record], columns: [String], row: (Record) throws -> [String]) throws {
        print(json ? try encodeJSON(records) : table(columns, try records.map(row)))
    }

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
                return try await body(store)
            } catch {
                throw CLIError(describe(error))
            }
        }
        let path = socket ?? Defaults.environment["BOXCAR_SOCKET"] ?? Defaults.socketPath
        do {
            return try await AgentClient.with(.unixSocket(path)) { client in
                try await body(client)
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

// The agent's client and its database answer these reads alike.
extension AgentClient: DataSource {}
extension Store: DataSource {}
