#if canImport(Glibc)
import Glibc
#endif
import BoxcarAPI
import BoxcarModel
import BoxcarSensors
import BoxcarStore
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import ServiceLifecycle
import Synchronization

/// What the agent needs to run; `boxcar agent` fills it from flags, environment and file.
public struct AgentConfiguration: Sendable {
    public var databasePath: String
    public var socketPath: String
    /// A TCP address to serve too ("127.0.0.1:7070"); nil: the unix socket only.
    public var listen: TCPAddress?
    public var artifactsDirectory: String
    public var durability: Durability
    public var limits: Limits
    /// How often the machine is sampled; nil: not at all.
    public var sampleInterval: Duration?
    /// Where /proc and /sys are read ("/proc" and "/sys"; a fixture tree in tests).
    public var procRoot: String
    public var sysRoot: String
    /// The NVML library to dlopen.
    public var nvmlLibrary: String
    /// Whether `listen` may be an address other than loopback (then `token` is required).
    public var allowRemote: Bool
    /// The bearer token every call on the TCP listener must carry; nil: none asked.
    public var token: String?
    /// The group given access to the socket (its directory becomes 0750, the socket 0660).
    public var socketGroup: gid_t?
    /// Bytes of Log batches accepted and not yet committed, across every stream; a stream past
    /// it waits (backpressure), so clients faster than the disk are slowed, not buffered.
    public var ingestMemoryBytes: Int = 128 << 20
    /// The machine's own series are kept this long; nil: for ever.
    public var retention: Duration?
    /// The most bytes the database may use; the oldest host points go first. nil: no limit.
    public var maxDatabaseBytes: Int64?

    public init(
        databasePath: String, socketPath: String, listen: TCPAddress? = nil,
        artifactsDirectory: String, durability: Durability = .normal, limits: Limits = .standard,
        sampleInterval: Duration? = nil, procRoot: String = "/proc", sysRoot: String = "/sys",
        nvmlLibrary: String = "libnvidia-ml.so.1", allowRemote: Bool = false, token: String? = nil,
        socketGroup: gid_t? = nil
    ) {
        self.databasePath = databasePath
        self.socketPath = socketPath
        self.listen = listen
        self.artifactsDirectory = artifactsDirectory
        self.durability = durability
        self.limits = limits
        self.sampleInterval = sampleInterval
        self.procRoot = procRoot
        self.sysRoot = sysRoot
        self.nvmlLibrary = nvmlLibrary
        self.allowRemote = allowRemote
        self.token = token
        self.socketGroup = socketGroup
    }

    /// Refuses a TCP listener that would open the API to the network without a token.
    public func checkListener() throws {
        guard let listen else { return }
        if !listen.isLoopback && !allowRemote {
            throw ValidationError(
                "listening on \(listen) would open the API to other machines: listen on 127.0.0.1 or ::1, or pass --allow-remote with --token-file")
        }
        if allowRemote && token == nil {
            throw ValidationError("--allow-remote needs --token-file: every call from another machine must carry the token")
        }
    }
}

public struct TCPAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    /// Parses "HOST:PORT" ("[::1]:7070" for IPv6).
    public init(parsing text: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw ValidationError("listen address \(text) must be HOST:PORT, with a port from 0 to 65535")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ValidationError("listen address \(text) has no host") }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// 127.0.0.0/8, ::1 and localhost: reachable from this machine only.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// The running agent: the store, the artifact directory and the gRPC servers on the unix socket
/// (and TCP when asked). A ServiceLifecycle service: on graceful shutdown it stops accepting,
/// lets calls in flight finish, commits what was accepted and removes its socket.
public final class Agent: Service, Sendable {
    public let configuration: AgentConfiguration
    private let logger: Logger
    private let ready = Mutex<[CheckedContinuation<[String], Error>]>([])
    private let addresses = Mutex<Result<[String], any Error>?>(nil)

    public static let version = "0.1.0"

    public init(configuration: AgentConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The addresses served ("unix:///…", "127.0.0.1:7070"), once the agent listens.
    public func listeningAddresses() async throws -> [String] {
        try await withCheckedThrowingContinuation { continuation in
            let known = ready.withLock { waiters -> Result<[String], any Error>? in
                if let known = addresses.withLock({ $0 }) { return known }
                waiters.append(continuation)
                return nil
            }
            if let known { continuation.resume(with: known) }
        }
    }

    public func run() async throws {
        do {
            try await serve()
        } catch {
            let waiters = ready.withLock { waiters in
                addresses.withLock { $0 = $0 ?? .failure(error) }
                defer { waiters.removeAll() }
                return waiters
            }
            for waiter in waiters { waiter.resume(throwing: error) }
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
        let artifacts = try ArtifactStore(root: configuration.artifactsDirectory)
        try prepareSocketPath(configuration.socketPath)

        let changes = ChangeFeed()
        let member = Modelbox_ClusterMember.with {
            $0.id = hostName() + ":" + configuration.socketPath
            $0.hostName = hostName()
            $0.rpcAddr = "unix://" + configuration.socketPath
        }
        let services: [any RegistrableRPCService] = [
            ModelStoreService(
                store: store, artifacts: artifacts, limits: configuration.limits, changes: changes,
                member: member, logger: logger),
            AgentService(
                store: store, limits: configuration.limits, startedAt: .now, version: Self.version,
                logger: logger, budget: ByteBudget(capacity: configuration.ingestMemoryBytes)),
            // After ModelStoreService: replaces its GetMetrics handler.
            GetMetricsFastPath(store: store),
        ]
        let transportConfig = HTTP2ServerTransport.Posix.Config.defaults {
            $0.rpc.maxRequestPayloadSize = configuration.limits.maxMessageBytes
        }
        var servers = [
            GRPCServer(
                transport: .http2NIOPosix(
                    address: .unixDomainSocket(path: configuration.socketPath),
                    transportSecurity: .plaintext, config: transportConfig),
                services: services)
        ]
        if let listen = configuration.listen {
            servers.append(GRPCServer(
                transport: .http2NIOPosix(
                    address: listen.host.contains(":")
                        ? .ipv6(host: listen.host, port: listen.port)
                        : .ipv4(host: listen.host, port: listen.port),
                    transportSecurity: .plaintext, config: transportConfig),
                services: services,
                interceptors: configuration.token.map { [BearerTokenInterceptor(token: $0)] } ?? []))
        }

        var sampler: Sampler?
        if let interval = configuration.sampleInterval, interval > .zero {
            sampler = Sampler(
                store: store, interval: interval, sensors: hostSensors(procRoot: configuration.procRoot, sysRoot: configuration.sysRoot),
                processes: ProcessTreeSensor(procRoot: configuration.procRoot),
                nvidia: loadNVIDIA(configuration.nvmlLibrary), logger: logger)
        }
        var retention: Retention?
        if configuration.retention != nil || configuration.maxDatabaseBytes != nil {
            retention = Retention(
                store: store, maxAge: configuration.retention, maxBytes: configuration.maxDatabaseBytes, logger: logger)
        }
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
            try await serve(allServers, sampler: sampler, retention: retention, changes: changes) {
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
        changes.finishAll()
        await store.close()
        if let outcome, !(outcome is CancellationError) { throw outcome }
        logger.info("stopped; every accepted write is committed")
    }

    /// NVML when the machine has it; its absence is reported, never fatal.
    private func loadNVIDIA(_ path: String) -> NVIDIAGPUSensor? {
        do {
            let sensor = try NVIDIAGPUSensor(library: try NVMLLibrary.load(path: path))
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

    private func serve(
        _ allServers: [GRPCServer<HTTP2ServerTransport.Posix>], sampler: Sampler?, retention: Retention?, changes: ChangeFeed,
        onListening: @escaping @Sendable () -> Void
    ) async throws {
        let configuration = self.configuration
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                for server in allServers {
                    group.addTask { try await server.serve() }
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
                var bound: [String] = []
                for server in allServers {
                    let address = try await server.transport.listeningAddress
                    if let unix = address.unixDomainSocket {
                        bound.append("unix://\(unix.path)")
                    } else if let ipv4 = address.ipv4 {
                        bound.append("\(ipv4.host):\(ipv4.port)")
                    } else if let ipv6 = address.ipv6 {
                        bound.append("[\(ipv6.host)]:\(ipv6.port)")
                    }
                }
                onListening()
                self.announce(bound)
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
            for server in allServers { server.beginGracefulShutdown() }
            changes.finishAll()
        }
    }

    private func announce(_ bound: [String]) {
        let waiters = ready.withLock { waiters in
            addresses.withLock { $0 = .success(bound) }
            defer { waiters.removeAll() }
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: bound) }
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
            // run without the group is given to it as well.
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

/// Whoever can write to the socket's directory can put their own listener in the agent's place:
/// refuse a directory that another user owns or may write to (sticky ones like /tmp excepted).
func checkSocketDirectory(_ directory: String) throws {
    var info = stat()
    guard lstat(directory, &info) == 0 else {
        throw ArtifactError.io("cannot inspect the socket directory \(directory)", errno)
    }
    if (info.st_mode & S_IFMT) == S_IFLNK {
        throw ValidationError("the socket directory \(directory) is a symbolic link; refusing to follow it")
    }
    guard (info.st_mode & S_IFMT) == S_IFDIR else {
        throw ValidationError("the socket directory \(directory) is not a directory")
    }
    if info.st_uid != getuid() && info.st_uid != 0 {
        throw ValidationError("the socket directory \(directory) belongs to another user (uid \(info.st_uid))")
    }
    let writableByOthers = info.st_mode & (S_IWGRP | S_IWOTH) != 0
    let sticky = info.st_mode & S_ISVTX != 0
    if writableByOthers && !sticky {
        throw ValidationError("the socket directory \(directory) is writable by other users; make it 0700 or choose another --socket")
    }
}

/// The device and inode of the socket this agent bound, so that it removes its own socket on exit
/// and never one a newer agent has put there since.
func socketIdentity(_ path: String) -> (dev_t, ino_t)? {
    var info = stat()
    return lstat(path, &info) == 0 ? (info.st_dev, info.st_ino) : nil
}

func parent(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count)
    return String(cString: buffer)
}

/// Whether something accepts connections on the unix socket at `path`.
func socketAnswers(_ path: String) -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (index, byte) in bytes.prefix(raw.count - 1).enumerated() { raw[index] = byte }
    }
    let rc = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    return rc == 0
}
