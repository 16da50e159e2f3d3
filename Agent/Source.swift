import ArgumentParser
import BoxcarClient
import BoxcarModel
import BoxcarServer
import BoxcarStore
import GRPCCore

/// Where the read commands get their data: the running agent (its socket, or TCP), a collector
/// (the same API, every agent's records), or an agent's database file.
struct SourceOptions: ParsableArguments {
    @Option(help: "Read this database file directly (read-only) instead of asking the agent.")
    var db: String?

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Print JSON for machines instead of tables for people.")
    var json = false

    /// Prints `records` as JSON for machines (`--json`), else as a table of `columns` for people.
    func output<Record: Encodable>(_ records: [Record], columns: [String], row: (Record) throws -> [String]) throws {
        print(json ? try encodeJSON(records) : table(columns, try records.map(row)))
    }

    /// Runs `body` against the chosen source, turning failures into messages a person can act on.
    func withSource<R: Sendable>(_ body: (any DataSource) async throws -> R) async throws -> R {
        guard let db else { return try await connection.withClient { try await body($0) } }
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
}

/// How a command reaches a running agent or a collector: its socket, or TCP.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "The agent's or collector's socket. Default: $BOXCAR_SOCKET, else the agent's default.")
    var socket: String?

    @Option(help: ArgumentHelp(
        "Ask an agent (--listen) or a collector over TCP instead of a socket.", valueName: "HOST:PORT"))
    var target: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp(
        "A file holding the token to send with --target (mode 0600).", valueName: "FILE"))
    var tokenFile: String?

    @Option(help: ArgumentHelp("Speak TLS to --target, trusting these certificate authorities (PEM).", valueName: "FILE"))
    var ca: String?

    /// Runs `body` with a client of the agent, turning failures into messages a person can act on.
    func withClient<R: Sendable>(_ body: (AgentClient) async throws -> R) async throws -> R {
        let (target, token) = try connection()
        do {
            return try await AgentClient.with(target, token: token, caFile: ca) { client in
                try await body(client)
            }
        } catch let error as RPCError where error.code == .unavailable && error.message.contains("establish a connection") {
            if case .unixSocket(let path) = target {
                throw CLIError(
                    "no agent answers on \(path): start one with `boxcar agent`, or read a database file with --db PATH")
            }
            throw CLIError("nothing answers on \(target): \(error.message)")
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError(describe(error))
        }
    }

    /// The agent or collector asked, and the token to send it.
    private func connection() throws -> (AgentTarget, String?) {
        guard let target else {
            guard tokenFile == nil, ca == nil else { throw CLIError("--token-file and --ca go with --target") }
            let path = socket ?? Defaults.environment["BOXCAR_SOCKET"] ?? Defaults.socketPath
            try checkSocketBeforeConnecting(path, environment: Defaults.environment)
            return (.unixSocket(path), nil)
        }
        guard socket == nil else { throw CLIError("give --socket or --target, not both") }
        let address: TCPAddress
        do { address = try TCPAddress(parsing: target) } catch { throw CLIError("--target: \(describe(error))") }
        let token = try tokenFile.map(AgentSettings.readToken)
        if token != nil && ca == nil && !address.isLoopback {
            throw CLIError("--token-file would send the token in the clear to \(address.host): give --ca for TLS")
        }
        return (.tcp(host: address.host, port: address.port), token)
    }
}

protocol DataSource: Sendable {
    func experiments(namespace: String?) async throws -> [Experiment]
    func metrics(parentID: String, keys: [String]?) async throws -> [(key: String, columns: MetricColumns)]
    /// The points of the series whose steps are within `steps`.
    func metrics(parentID: String, keys: [String]?, steps: ClosedRange<UInt64>?) async throws -> [(key: String, columns: MetricColumns)]
    /// The first and last step of a series; nil when it has no point.
    func stepExtent(parentID: String, key: String) async throws -> ClosedRange<UInt64>?
    /// The keys `metrics` would answer for the parent (it may leave out some of them: a machine
    /// series with no point inside the parent's attachment windows), sorted.
    func metricKeys(parentID: String) async throws -> [String]
    func events(parentID: String) async throws -> [Event]
    func files(parentID: String) async throws -> [FileRecord]
}

// The agent's client and its database answer these reads alike.
extension AgentClient: DataSource {}
extension Store: DataSource {
    func metrics(parentID: String, keys: [String]?, steps: ClosedRange<UInt64>?) async throws -> [(key: String, columns: MetricColumns)] {
        // Ranges are signed: a range past Int64.max is read to the end and cut here.
        guard let steps else { return try await metrics(parentID: parentID, keys: keys, range: nil) }
        let range = MetricRange(
            from: Int64(clamping: steps.lowerBound), to: steps.upperBound >= UInt64(Int64.max) ? .max : Int64(steps.upperBound), axis: .step)
        return try await metrics(parentID: parentID, keys: keys, range: range).map { entry -> (key: String, columns: MetricColumns) in
            guard steps.upperBound >= UInt64(Int64.max) else { return entry }
            let inside = (0..<entry.columns.count).filter { steps.contains(entry.columns.steps[$0]) }
            return (key: entry.key, columns: entry.columns.selecting(inside))
        }
    }
}
