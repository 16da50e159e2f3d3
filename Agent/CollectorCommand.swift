#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import BoxcarCollector
import BoxcarExposition
import BoxcarFlowControl
import BoxcarHTTP
import BoxcarModel
import BoxcarServer
import BoxcarStorage
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// `boxcar collector`: receives what agents forward (`boxcar agent --upstream`) and writes it
/// into PostgreSQL, until SIGINT, SIGTERM or SIGHUP.
struct CollectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collector",
        abstract: "Receive what agents forward and write it into PostgreSQL.",
        discussion: "Agents started with --upstream forward every record to a collector; it writes them into "
            + "PostgreSQL (schema `boxcar`, migrated at start; views in `public`) exactly once, moving each agent's "
            + "cursor in the transaction that holds its records. Several collectors may serve one PostgreSQL. "
            + "PostgreSQL down at start: the collector retries, and agents keep their records until it is back.\n\n"
            + "Example: boxcar collector --postgres postgres:///boxcar?host=/run/postgresql --listen 0.0.0.0:7070 "
            + "--tls-cert cert.pem --tls-key key.pem --token-file token")

    @Option(help: ArgumentHelp(
        "PostgreSQL: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require], or postgres:///DATABASE?host=/socket/dir",
        valueName: "URL"))
    var postgres: String

    @Option(help: ArgumentHelp("Serve agents on TCP at HOST:PORT (beyond loopback: with --tls-cert, --tls-key and --token-file).", valueName: "HOST:PORT"))
    var listen: String?

    @Option(help: ArgumentHelp("Serve agents on this unix socket.", valueName: "PATH"))
    var socket: String?

    @Option(help: ArgumentHelp(
        "Serve /metrics (the collector's health: agents, their lag, rows written, PostgreSQL errors), /healthz and /readyz over HTTP (beyond loopback: with --token-file, whose tokens /metrics asks for).",
        valueName: "HOST:PORT"))
    var http: String?

    @Option(help: ArgumentHelp("Where forwarded files' bytes are kept, by content.", valueName: "DIR"))
    var artifacts: String = Defaults.dataDirectory + "/collector/artifacts"

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("The certificate chain (PEM) served on TCP.", valueName: "FILE"))
    var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("Its private key (PEM).", valueName: "FILE"))
    var tlsKey: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp(
        "Named tokens, a line each: NAME agent|read TOKEN (mode 0600; read again when it changes).", valueName: "FILE"))
    var tokenFile: String?

    @Option(help: ArgumentHelp("Drop day partitions of points and events older than this: 30d, 12h, …", valueName: "DURATION"))
    var retention: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace … critical", valueName: "LEVEL"))
    var logLevel: String = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw CLIError("log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not \(logLevel)")
        }
        keepCreatedFilesPrivate()
        let address: PostgresAddress
        do { address = try PostgresAddress(parsing: postgres) } catch { throw CLIError("\(error)") }
        let tcp = try listen.map {
            do { return try TCPAddress(parsing: $0) } catch { throw CLIError(describe(error)) }
        }
        guard tcp != nil || socket != nil else { throw CLIError("give --listen HOST:PORT, --socket PATH, or both") }
        let httpAddress = try http.map {
            do { return try TCPAddress(parsing: $0) } catch { throw CLIError(describe(error)) }
        }
        if let httpAddress, !httpAddress.isLoopback, tokenFile == nil {
            throw CLIError("serving HTTP on \(httpAddress) beyond loopback needs --token-file: /metrics then asks for one of its tokens")
        }
        guard (tlsCertificate == nil) == (tlsKey == nil) else { throw CLIError("--tls-cert and --tls-key go together") }
        if let tcp, !tcp.isLoopback, tlsCertificate == nil || tokenFile == nil {
            throw CLIError("listening on \(tcp) beyond loopback needs --tls-cert, --tls-key and --token-file: agents' records would cross the network unprotected")
        }
        let retention = try retention.map { try Setting.duration($0, "retention") }

        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "boxcar.collector")
        // The pool logs each failed connection at info, every second while PostgreSQL is away:
        // the collector says that itself, once (Collector.prepare, and each write's error).
        var poolLogger = logger
        poolLogger.logLevel = level < .info ? level : max(level, .warning)
        let client = PostgresClient(configuration: address.configuration, backgroundLogger: poolLogger)
        let collector: Collector
        do {
            collector = try Collector(
                client: client, address: address.description, artifacts: try ArtifactStore(root: artifacts),
                tokenFile: tokenFile, version: Agent.version, logger: logger)
        } catch {
            throw CLIError(describe(error))
        }
        // The agent's own read services over every agent's records: the CLI, the published
        // ModelBox client and dashboards read the fleet as they read one agent.
        // Connections and the files of downloads, counted together under one bound.
        let descriptors = ClientDescriptors(limit: ConnectionLimits().effectiveMaxConnections)
        let reads = AgentServices(
            store: collector.store, artifacts: collector.artifacts, limits: Limits(),
            ingestMemoryBytes: 1 << 20, hostName: hostName(), socketPath: socket ?? "", version: Agent.version,
            logger: logger, descriptors: descriptors)
        let process = CollectorProcess(
            collector: collector, probe: address.probe, reads: reads, tcp: tcp, socket: socket,
            tls: tlsCertificate.map { ($0, tlsKey!) }, retention: retention, http: httpAddress, logger: logger)
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: client), .init(service: process)],
            gracefulShutdownSignals: [.sigterm, .sigint, .sighup], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(5)
        do {
            try await ServiceGroup(configuration: groupConfiguration).run()
        } catch {
            throw CLIError("the collector stopped: \(describe(error))")
        }
    }
}

/// The running collector: the schema migrated (waiting for PostgreSQL if need be), then the
/// listeners and the partition upkeep, until a graceful shutdown lets calls in flight finish.
struct CollectorProcess: Service {
    let collector: Collector
    let probe: PostgresConnection.Configuration
    let reads: AgentServices
    let tcp: TCPAddress?
    let socket: String?
    let tls: (certificate: String, key: String)?
    let retention: Duration?
    let http: TCPAddress?
    let logger: Logger
    /// Set once PostgreSQL is ready and the listeners are bound.
    let ready = Flag()

    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .relaxed) }
        var isSet: Bool { value.load(ordering: .relaxed) }
    }

    /// Forwarded batches are large: a few MiB of points and file chunks of 1 MiB.
    static let maxRequestBytes = 64 << 20
    /// Bytes of requests (agents' batches, their files' chunks) held before the calls take them,
    /// across every stream: a stream whose next message finds no room waits.
    static let requestMemoryBytes = 256 << 20

    /// Pings find an agent that vanished (its machine lost power) within 80 s, so its stream and
    /// the file it was sending do not stay open for ever; agents may ping every 10 s (they do
    /// every 30 s).
    static let keepalive = HTTP2ServerTransport.Config.Keepalive(
        time: .seconds(60), timeout: .seconds(20),
        clientBehavior: .init(minPingIntervalWithoutCalls: .seconds(10), allowWithoutCalls: true))

    func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            if let http {
                let server = httpServer(http)
                group.addTask {
                    try await server.run { address in logger.info("serving HTTP", metadata: ["http": "\(address)"]) }
                }
            }
            try await serve()
        }
    }

    /// `--http`: the collector's health, and whether it is ready.
    private func httpServer(_ address: TCPAddress) -> HTTPServer {
        let (collector, reads, ready) = (self.collector, self.reads, self.ready)
        let endpoints = HTTPEndpoints(
            metrics: { format in
                var health = AgentExposition.processHealth(version: collector.version, statistics: reads.statistics)
                let counts = collector.statistics.current
                // An agent that reconnects has two streams for a moment: its newest counts.
                var newest: [String: (stream: Int, agent: CollectorStatistics.Agent)] = [:]
                for (stream, agent) in counts.agents where stream > (newest[agent.agentID.uuidString]?.stream ?? .min) {
                    newest[agent.agentID.uuidString] = (stream, agent)
                }
                health.collector = .init(
                    agents: newest.values.map(\.agent).sorted { ($0.host, $0.agentID.uuidString) < ($1.host, $1.agentID.uuidString) }
                        .map { ($0.agentID.uuidString.lowercased(), $0.host, $0.records, $0.seconds) },
                    rows: counts.rows, batches: counts.batches, postgresErrors: counts.postgresErrors)
                var writer = ExpositionWriter(format: format)
                health.write(into: &writer)
                return writer.finish()
            },
            readiness: {
                guard ready.isSet else { return "not ready: PostgreSQL is not reached yet, or the listeners are not bound" }
                return collector.statistics.current.postgresFault.map { "PostgreSQL failed the last write: \($0)" }
            })
        return HTTPServer(host: address.host, port: address.port, authorize: collector.authorizes, endpoints: endpoints, logger: logger)
    }

    private func serve() async throws {
        let address = collector.address
        let schema: Int
        do {
            schema = try await cancelWhenGracefulShutdown { try await collector.prepare(probe: probe) }
        } catch is CancellationError where Task.isShuttingDownGracefully {
            logger.info("stopped before PostgreSQL could be reached")
            return
        }
        logger.info("PostgreSQL ready", metadata: ["postgres": "\(address)", "schema_found": "\(schema)"])
        let services = collector.services + reads.services
        var servers: [GRPCServer<HTTP2ServerTransport.Posix>] = []
        let gate = ConnectionGate(
            limits: ConnectionLimits(), budget: ByteBudget(capacity: Self.requestMemoryBytes), descriptors: reads.descriptors, logger: logger)
        if let socket {
            // A socket left by a collector that died is replaced; one that answers is not stolen.
            if socketIdentity(socket) != nil {
                guard !socketAnswers(socket) else { throw CLIError("another process is listening on \(socket)") }
                unlink(socket)
            }
            servers.append(Listener.unixSocket(path: socket).server(
                serving: services, token: nil, maxRequestBytes: Self.maxRequestBytes,
                interceptors: reads.interceptors + collector.interceptors, keepalive: Self.keepalive, gate: gate))
        }
        if let tcp {
            servers.append(Listener.tcp(tcp).server(
                serving: services, token: nil, maxRequestBytes: Self.maxRequestBytes,
                interceptors: reads.interceptors + collector.interceptors, tls: tls, keepalive: Self.keepalive, gate: gate))
        }
        let all = servers
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                for server in all {
                    group.addTask {
                        do { try await server.serve() } catch where Task.isShuttingDownGracefully {}
                    }
                }
                group.addTask {
                    try? await cancelWhenGracefulShutdown { try await collector.maintain(retention: retention) }
                }
                var bound: [String] = []
                do {
                    for server in all { bound.append(try await server.boundAddress) }
                } catch where Task.isShuttingDownGracefully {
                    return
                }
                ready.set()
                logger.info("boxcar collector listening", metadata: [
                    "addresses": "\(bound.joined(separator: ", "))", "postgres": "\(address)",
                ])
            }
        } onGracefulShutdown: {
            logger.info("shutting down: no new calls; finishing those in flight")
            for server in all { server.transport.beginGracefulShutdown() }
            reads.finishWatches()
        }
        if let socket { unlink(socket) }
        logger.info("stopped")
    }
}
