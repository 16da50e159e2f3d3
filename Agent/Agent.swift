#if canImport(Glibc)
import Glibc
#endif
import BoxcarAPI
import BoxcarEventLoop
import BoxcarExposition
import BoxcarForwarding
import BoxcarHTTP
import BoxcarModel
import BoxcarRemoteWrite
import BoxcarSampling
import BoxcarSensors
import BoxcarServer
import BoxcarStorage
import BoxcarStore
import AsyncHTTPClient
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The running agent: the store, the artifact directory, the gRPC servers on the unix socket
/// (and TCP when asked), the sampler and retention. A ServiceLifecycle service: on graceful
/// shutdown it stops accepting, lets calls in flight finish, commits what was accepted and
/// removes its socket.
final class Agent: Service, Sendable {
    let configuration: AgentConfiguration
    private let logger: Logger
    private let ready = Mutex<[CheckedContinuation<[String], Error>]>([])
    private let addresses = Mutex<Result<[String], any Error>?>(nil)

    static let version = "0.1.0"

    init(configuration: AgentConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The addresses served ("unix:///…", "127.0.0.1:7070"), once the agent listens.
    func listeningAddresses() async throws -> [String] {
        try await withCheckedThrowingContinuation { continuation in
            let known = ready.withLock { waiters -> Result<[String], any Error>? in
                if let known = addresses.withLock({ $0 }) { return known }
                waiters.append(continuation)
                return nil
            }
            if let known { continuation.resume(with: known) }
        }
    }

    func run() async throws {
        do {
            try await serve()
            settle(.failure(CLIError("the agent stopped before it listened")))
        } catch {
            settle(.failure(error))
            throw error
        }
    }

    private func serve() async throws {
        let configuration = self.configuration
        try configuration.checkListener()
        if let listen = configuration.listen, configuration.token == nil {
            logger.warning("the TCP listener needs no token: every user of this machine can reach the API on \(listen) (the socket's permissions do not apply); pass --token-file to require one")
        }
        try makeDirectories(parent(of: configuration.databasePath))
        let store = try Store.open(
            path: configuration.databasePath, durability: configuration.durability, logger: logger)
        let identity = try await establishIdentity(store, logger: logger)
        let artifacts = try ArtifactStore(root: configuration.artifactsDirectory)
        let ownsArtifacts = try await sweepArtifacts(artifacts, of: store)
        let database = configuration.databasePath
        warnIfOthersCanRead(
            [parent(of: database), database, database + "-wal", database + "-shm", configuration.artifactsDirectory],
            logger: logger)
        var forwarder: Forwarder?
        if !configuration.upstream.targets.isEmpty {
            var upstream = configuration.upstream
            if upstream.labels["host"] == nil { upstream.labels["host"] = identity.hostName }
            forwarder = Forwarder(
                store: store, artifacts: artifacts, identity: identity, configuration: upstream,
                version: Self.version, logger: logger)
        }
        var externalLabels = configuration.upstream.labels
        if externalLabels["host"] == nil { externalLabels["host"] = identity.hostName }
        let remoteWriters = configuration.remoteWrite.urls.map { url in
            RemoteWriter(
                store: store,
                target: RemoteWriteTarget(
                    url: url,
                    headers: configuration.remoteWrite.headers + (configuration.remoteWrite.token.map { [("Authorization", "Bearer " + $0)] } ?? []),
                    externalLabels: externalLabels, processes: configuration.remoteWrite.processes),
                client: HTTPClient.shared, logger: logger)
        }
        try prepareSocketPath(configuration.socketPath)

        var sampler: Sampler?
        if let interval = configuration.sampleInterval, interval > .zero {
            sampler = Sampler(
                store: store, interval: interval, sensors: hostSensors(procRoot: configuration.procRoot, sysRoot: configuration.sysRoot, loopback: configuration.networkLoopback),
                processes: ProcessTreeSensor(procRoot: configuration.procRoot),
                nvidia: loadNVIDIA(configuration.nvmlLibrary, interval: interval), logger: logger, keepsSnapshot: configuration.http != nil,
                storesCumulative: !configuration.remoteWrite.urls.isEmpty)
        }
        let descriptors = ClientDescriptors(limit: configuration.connections.effectiveMaxConnections)
        let services = AgentServices(
            store: store, artifacts: artifacts, limits: configuration.limits,
            ingestMemoryBytes: configuration.ingestMemoryBytes, hostName: hostName(),
            socketPath: configuration.socketPath, version: Self.version, logger: logger, descriptors: descriptors,
            upstreams: { [forwarder] in forwarder?.status().map(Boxcar_V1_UpstreamStatus.init) ?? [] },
            machine: { [sampler, identity] in
                guard let sampler else { return .with { $0.hostName = identity.hostName } }
                return Boxcar_V1_SnapshotResponse(try await sampler.live(), interval: sampler.interval, hostName: identity.hostName)
            },
            stepsArrived: { [marks = sampler?.stepMarks] parentID, steps in marks?.arrived(experimentID: parentID, steps: steps) })
        let maxRequestBytes = configuration.limits.maxMessageBytes
        let gate = ConnectionGate(limits: configuration.connections, budget: services.budget, descriptors: descriptors, logger: logger)
        // Every listener on one event loop, where the short calls run too (EventLoopExecutor): one
        // thread, so that `rpcLoop.next()` is the loop of every connection.
        let rpcLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { rpcLoop.shutdownGracefully { _ in } }
        // A lone call's write commits on the loop (Store.commitOnCaller): waking the writer thread
        // and being woken by it cost such a call more than its commit. With other calls open, the
        // writer commits theirs together, as the loop goes on serving.
        let loop = rpcLoop.next()
        store.commitOnCaller { [gate] in gate.isOnlyCall(on: loop) }
        var servers = [
            Listener.unixSocket(path: configuration.socketPath).server(
                serving: services.services, token: nil, maxRequestBytes: maxRequestBytes,
                interceptors: services.interceptors, gate: gate, group: rpcLoop)
        ]
        if let listen = configuration.listen {
            servers.append(Listener.tcp(listen).server(
                serving: services.services, token: configuration.token, maxRequestBytes: maxRequestBytes,
                interceptors: services.interceptors, gate: gate, group: rpcLoop))
        }

        var retention: Retention?
        if configuration.retention != nil || configuration.maxDatabaseBytes != nil {
            retention = Retention(
                store: store, maxAge: configuration.retention, maxBytes: configuration.maxDatabaseBytes,
                forwarding: forwarder != nil, readers: remoteWriters.map(\.cursorName), logger: logger)
        }
        var http: (HTTPServer, AgentExposition)?
        if let address = configuration.http {
            let exposition = AgentExposition(
                store: store, sampler: sampler, statistics: services.statistics, forwarder: forwarder,
                remoteWriters: remoteWriters, version: Self.version)
            var endpoints = exposition.endpoints
            endpoints.pages = RunPages(store: store, artifacts: artifacts).endpoints
            let server = HTTPServer(
                host: address.host, port: address.port, token: configuration.token, endpoints: endpoints, logger: logger)
            http = (server, exposition)
        }
        // With sampling off too: the ticks a previous run left in the head are compacted.
        let compaction = Compaction(
            store: store, sampleInterval: configuration.sampleInterval ?? .seconds(1), ticksPerBlock: configuration.headTicks,
            readers: .init(forwarding: forwarder != nil, cursors: remoteWriters.map(\.cursorName)), logger: logger)
        // Before retention starts: it keeps what each receiver's cursor has not passed.
        for writer in remoteWriters { try await writer.prepareCursor() }
        let allServers = servers
        let boundSocket = Mutex<(dev_t, ino_t)?>(nil)
        defer {
            if let bound = boundSocket.withLock({ $0 }), let now = socketIdentity(configuration.socketPath),
                bound == now
            {
                unlink(configuration.socketPath)
            }
        }
        // Whatever ends the servers (a graceful shutdown, cancellation after its deadline, an
        // error), the store commits what it accepted before the agent returns.
        let outcome: (any Error)?
        do {
            try await serve(
                allServers, on: EventLoopExecutor(rpcLoop.next()), http: http, sampler: sampler, retention: retention, compaction: compaction, forwarder: forwarder,
                remoteWriters: remoteWriters, services: services,
                artifactsSweep: ownsArtifacts ? (artifacts, store) : nil
            ) {
                boundSocket.withLock { $0 = socketIdentity(configuration.socketPath) }
                // The directory (0700, or 0750 for --socket-group) already keeps others out. The
                // group first, the mode last: once the mode is 0660 both are set.
                if let group = configuration.socketGroup, chown(configuration.socketPath, uid_t.max, group) != 0 {
                    self.logger.warning("cannot give the socket to group \(group); only this user can reach it", metadata: [
                        "error": "\(String(cString: strerror(errno)))",
                    ])
                }
                chmod(configuration.socketPath, 0o660)
            }
            outcome = nil
        } catch {
            outcome = error
        }
        services.finishWatches()
        await store.close()
        if let outcome, !(outcome is CancellationError) { throw outcome }
        logger.info("stopped; every accepted write is committed")
    }

    /// NVML when the machine has it; its absence is reported, never fatal. The counters that cost
    /// milliseconds a read (NVIDIAGPUSensor.slowMetrics) are read every 10 s, or every tick when
    /// ticks are further apart.
    private func loadNVIDIA(_ path: String, interval: Duration) -> NVIDIAGPUSensor? {
        do {
            let slowEvery = Int((Duration.seconds(10) / interval).rounded(.down))
            let sensor = try NVIDIAGPUSensor(library: try NVMLLibrary.load(path: path), slowEvery: slowEvery)
            logger.info("NVML loaded", metadata: [
                "library": "\(path)", "driver": "\(sensor.library.driverVersion)", "gpus": "\(sensor.gpus.count)",
            ])
            for (index, reasons) in sensor.unsupported.sorted(by: { $0.key < $1.key }) {
                logger.info("GPU \(index) lacks some metrics", metadata: [
                    "metrics": "\(reasons.map { "\($0.key.rawValue): \($0.value)" }.sorted().joined(separator: "; "))"
                ])
            }
            return sensor
        } catch {
            logger.info("NVIDIA GPUs are not sampled", metadata: ["reason": "\(error)"])
            return nil
        }
    }

    /// How often a serving agent sweeps its artifacts directory, and how old what it removes must be.
    static let artifactsSweepInterval = Duration.seconds(3600)
    static let artifactsSweepAge = 24 * 3600

    /// Removes partial uploads and blobs no record names, when the artifacts directory is this
    /// database's alone (returns whether it is). At start that is all of them; while `serving`,
    /// only those untouched for a day (an upload in flight, a blob whose record is on its way).
    private func sweepArtifacts(_ artifacts: ArtifactStore, of store: Store, serving: Bool = false) async throws -> Bool {
        let referenced = try await store.referencedBlobs()
        guard try artifacts.isOwned(by: try await store.databaseID(), referenced: referenced) else {
            logger.warning("the artifacts directory \(artifacts.root) is not this database's alone (its owner file names another, or it holds blobs this database does not name from before owners were recorded): partial uploads and unreferenced blobs in it are left alone")
            return false
        }
        let cutoff = serving ? Int(time(nil)) - Self.artifactsSweepAge : nil
        let leftovers = try await NIOThreadPool.singleton.runIfActive {
            artifacts.removeLeftovers(keeping: referenced, modifiedBefore: cutoff)
        }
        if leftovers.partialUploads + leftovers.orphans > 0 {
            logger.notice(serving ? "removed leftovers older than a day from the artifacts directory" : "removed what an earlier run left in the artifacts directory", metadata: [
                "partial_uploads": "\(leftovers.partialUploads)", "unreferenced_blobs": "\(leftovers.orphans)",
            ])
        }
        return true
    }

    private func serve(
        _ allServers: [GRPCServer<HTTP2ServerTransport.Posix>], on rpcExecutor: EventLoopExecutor,
        http: (HTTPServer, AgentExposition)?, sampler: Sampler?,
        retention: Retention?, compaction: Compaction, forwarder: Forwarder?, remoteWriters: [RemoteWriter], services: AgentServices,
        artifactsSweep: (ArtifactStore, Store)?, onListening: @escaping @Sendable () -> Void
    ) async throws {
        let configuration = self.configuration
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                for server in allServers {
                    group.addTask {
                        do {
                            try await withTaskExecutorPreference(rpcExecutor) { try await server.serve() }
                        } catch where Task.isShuttingDownGracefully {
                            // A listener stopped while it was still binding fails its bind
                            // ("I/O on closed channel"): stopping was asked for, nothing was lost.
                            self.logger.debug("a listener ended while stopping", metadata: ["error": "\(error)"])
                        }
                    }
                }
                if let sampler {
                    group.addTask {
                        // Sampling simply stops at shutdown.
                        try? await cancelWhenGracefulShutdown { try await sampler.run() }
                    }
                }
                if let retention {
                    group.addTask {
                        try? await cancelWhenGracefulShutdown { try await retention.run() }
                    }
                }
                group.addTask {
                    try? await cancelWhenGracefulShutdown { try await compaction.run() }
                }
                if let (artifacts, store) = artifactsSweep {
                    group.addTask {
                        try? await cancelWhenGracefulShutdown {
                            while true {
                                try await Task.sleep(for: Self.artifactsSweepInterval)
                                do {
                                    _ = try await self.sweepArtifacts(artifacts, of: store, serving: true)
                                } catch {
                                    // The next hour tries again.
                                    self.logger.warning("the artifacts sweep failed", metadata: ["error": "\(error)"])
                                }
                            }
                        }
                    }
                }
                if let forwarder {
                    group.addTask {
                        // What is not acknowledged at shutdown stays in the outbox for the next run.
                        try? await cancelWhenGracefulShutdown { try await forwarder.run() }
                    }
                }
                for writer in remoteWriters {
                    group.addTask {
                        // It stops between requests at shutdown; what is not sent yet, the next
                        // run sends (the cursor).
                        do {
                            try await writer.run()
                        } catch is CancellationError {
                        } catch {
                            self.logger.error("remote write stopped", metadata: ["error": "\(error)"])
                        }
                    }
                }
                if let (server, _) = http {
                    group.addTask {
                        try await server.run { address in
                            self.logger.info("serving HTTP", metadata: ["http": "\(address)"])
                        }
                    }
                }
                var bound: [String] = []
                do {
                    for server in allServers { bound.append(try await server.boundAddress) }
                } catch where Task.isShuttingDownGracefully {
                    // Asked to stop while the listeners were still binding (a SIGTERM just after
                    // start): they stop without an address. That is a stop, not a failure; a
                    // socket file bound meanwhile is still removed at exit.
                    onListening()
                    return
                }
                onListening()
                http?.1.serving.store(true, ordering: .relaxed)
                self.settle(.success(bound))
                logger.info(
                    "boxcar agent listening",
                    metadata: [
                        "addresses": "\(bound.joined(separator: ", "))",
                        "database": "\(configuration.databasePath)",
                        "artifacts": "\(configuration.artifactsDirectory)",
                    ])
            }
        } onGracefulShutdown: {
            self.logger.info("shutting down: no new calls; finishing those in flight")
            // The transport's own shutdown, not the server's: told to stop before it has started,
            // a GRPCServer never listens, so its address would never be known and the wait for it
            // above would hang. The transport, told first, binds and then stops at once.
            for server in allServers { server.transport.beginGracefulShutdown() }
            services.finishWatches()
        }
    }

    /// Answers those waiting for the addresses, and later askers, with the first outcome known.
    private func settle(_ outcome: Result<[String], any Error>) {
        let (waiters, settled) = ready.withLock { waiters in
            let settled = addresses.withLock { known in
                if known == nil { known = outcome }
                return known!
            }
            defer { waiters.removeAll() }
            return (waiters, settled)
        }
        for waiter in waiters { waiter.resume(with: settled) }
    }

    /// Creates the socket's directory, and removes a stale socket left by an agent that died; a
    /// socket another agent still answers on is an error, not something to steal.
    private func prepareSocketPath(_ path: String) throws {
        let directory = parent(of: path)
        var created = mkdir(directory, 0o700) == 0
        if !created && errno != EEXIST {
            try makeDirectories(parent(of: directory))
            created = mkdir(directory, 0o700) == 0
            if !created && errno != EEXIST {
                throw ArtifactError.io("cannot create the socket directory \(directory)", errno)
            }
        }
        try checkSocketDirectory(directory)
        if let group = configuration.socketGroup {
            // The group may reach the socket, not write to the directory; one made by an earlier
            // run without the group is given to it as well, but never a shared one.
            guard mayOpenToGroup(directory, created: created) else {
                throw ValidationError(
                    "--socket-group gives the socket's directory to the group (mode 0750), and \(directory) is not"
                        + " the agent's own (another user's, or others may enter it): put the socket in a directory"
                        + " of its own, e.g. --socket \(directory == "/" ? "" : directory)/boxcar/agent.sock")
            }
            guard chown(directory, uid_t.max, group) == 0, chmod(directory, 0o750) == 0 else {
                throw ArtifactError.io("cannot give the socket directory \(directory) to group \(group)", errno)
            }
        }
        guard path.utf8.count < 108 else {
            throw ValidationError("the socket path \(path) is longer than the 107 bytes a unix socket address holds")
        }
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        if (status.st_mode & S_IFMT) == S_IFLNK {
            throw ValidationError("the socket path \(path) is a symbolic link; refusing to follow it (remove it or choose another --socket)")
        }
        guard (status.st_mode & S_IFMT) == S_IFSOCK else {
            throw ValidationError("\(path) exists and is not a socket; refusing to replace it")
        }
        if socketAnswers(path) {
            throw ValidationError("another agent is already listening on \(path)")
        }
        unlink(path)
    }
}
