#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import BoxcarModel
import BoxcarServer
import BoxcarStore
import Configuration
import Logging
import NIOPosix
import NIOCore
import ServiceLifecycle
import SystemPackage

/// `boxcar agent`: runs the agent in the foreground until SIGINT or SIGTERM.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the agent in the foreground.",
        discussion: """
            Each setting comes from its flag, else the environment (BOXCAR_DB, BOXCAR_SOCKET, …),
            else the configuration file (--config or BOXCAR_CONFIG; see Config/boxcar.yaml), else
            the default.
            """)

    @Option(help: "The SQLite database. Default: $XDG_DATA_HOME/boxcar/boxcar.db.")
    var db: String?

    @Option(help: "The unix socket to serve on. Default: $XDG_RUNTIME_DIR/boxcar/agent.sock, else /tmp/boxcar-<uid>/agent.sock.")
    var socket: String?

    @Option(help: "Also serve on TCP at HOST:PORT (off by default).")
    var listen: String?

    @Flag(help: "Let --listen take an address other than loopback; needs --token-file.")
    var allowRemote = false

    @Option(help: "A file holding the bearer token that every call on the TCP listener must carry.")
    var tokenFile: String?

    @Option(help: "A group given access to the socket (directory 0750, socket 0660). Default: none (0700).")
    var socketGroup: String?

    @Option(help: "The largest file an upload may hold, in bytes. Default: 17179869184 (16 GiB).")
    var maxUploadBytes: String?

    @Option(help: "Bytes of Log batches the agent holds before it commits them, across all streams; faster clients wait. Default: 134217728 (128 MiB).")
    var ingestMemoryBytes: String?

    @Option(help: "How long the machine's own series are kept: 30d, 12h, 90m, 45s or seconds. Default: for ever.")
    var retention: String?

    @Option(help: "The most the database may use (bytes, or with K, M, G); the oldest machine series go first. Default: no limit.")
    var maxDbSize: String?

    @Option(help: "Where uploaded artifacts are stored. Default: beside the database, in artifacts/.")
    var artifacts: String?

    @Option(help: "normal (survives a crash of the agent) or full (survives power loss).")
    var durability: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    @Option(help: "Seconds between samples of the machine; 0 turns sampling off. Default: 1.")
    var sampleInterval: String?

    @Option(help: "Where /proc is read. Default: /proc.")
    var procRoot: String?

    @Option(help: "Where /sys is read. Default: /sys.")
    var sysRoot: String?

    @Option(help: "The NVML library to load. Default: libnvidia-ml.so.1.")
    var nvmlLibrary: String?

    @Option(help: "swift (the default) or nio: run Swift concurrency on NIO's event loops.")
    var executor: String?

    @Option(help: "A YAML configuration file.")
    var config: String?

    func run() async throws {
        // NIO's event loops as the global executor save the hops between NIO and the Swift
        // concurrency pool that dominate the cost of a small unary call (see the README's
        // benchmark notes); it must happen before any other task starts.
        let executorChoice = executor ?? Defaults.environment["BOXCAR_EXECUTOR"]
        if executorChoice == "nio" {
            _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        } else if let executorChoice, executorChoice != "swift" {
            throw CLIError("executor must be swift or nio, not \(executorChoice)")
        }
        raiseFileLimit()
        let settings = try await AgentSettings.resolve(
            flags: [
                "db": db, "socket": socket, "listen": listen, "artifacts": artifacts,
                "durability": durability, "log-level": logLevel, "sample-interval": sampleInterval,
                "proc-root": procRoot, "sys-root": sysRoot, "nvml-library": nvmlLibrary,
                "allow-remote": allowRemote ? "true" : nil, "token-file": tokenFile, "socket-group": socketGroup,
                "max-upload-bytes": maxUploadBytes, "ingest-memory-bytes": ingestMemoryBytes,
                "retention": retention, "max-db-size": maxDbSize,
            ],
            configFile: config, environment: Defaults.environment)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = settings.logLevel
            return handler
        }
        let logger = Logger(label: "boxcar.agent")
        let agent = Agent(configuration: settings.agent, logger: logger)
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: agent)], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // Calls still running after this long are cancelled, so shutdown ends within 5 s.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(3)
        do {
            try await ServiceGroup(configuration: groupConfiguration).run()
        } catch {
            throw CLIError("the agent stopped: \(describe(error))")
        }
    }
}

/// The agent's settings after applying flag > environment > file > default.
struct AgentSettings {
    var agent: AgentConfiguration
    var logLevel: Logger.Level

    static func resolve(
        flags: [String: String?], configFile: String?, environment: [String: String]
    ) async throws -> AgentSettings {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for case let (key, value?) in flags {
            values[AbsoluteConfigKey(stringLiteral: key)] = .init(.string(value), isSecret: false)
        }
        var providers: [any ConfigProvider] = [
            InMemoryProvider(name: "flags", values: values),
            EnvironmentVariablesProvider(environmentVariables: environment).prefixKeys(with: "boxcar"),
        ]
        if let file = configFile ?? environment["BOXCAR_CONFIG"] {
            do {
                providers.append(try await FileProvider<YAMLSnapshot>(filePath: FilePath(file)))
            } catch {
                throw CLIError("cannot read the configuration file \(file): \(error)")
            }
        }
        let config = ConfigReader(providers: providers)

        let databasePath = config.string(forKey: "db") ?? Defaults.databasePath
        let durabilityText = config.string(forKey: "durability") ?? "normal"
        guard let durability = Durability(rawValue: durabilityText) else {
            throw CLIError("durability must be normal or full, not \(durabilityText)")
        }
        let levelText = config.string(forKey: "log-level") ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else {
            throw CLIError("log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not \(levelText)")
        }
        let intervalText = config.string(forKey: "sample-interval") ?? "1"
        guard let intervalSeconds = Double(intervalText), intervalSeconds >= 0, intervalSeconds.isFinite else {
            throw CLIError("sample-interval must be a number of seconds (0 turns sampling off), not \(intervalText)")
        }
        var listen: TCPAddress?
        if let text = config.string(forKey: "listen"), !text.isEmpty {
            do { listen = try TCPAddress(parsing: text) } catch { throw CLIError(describe(error)) }
        }
        let allowRemoteText = config.string(forKey: "allow-remote") ?? "false"
        guard let allowRemote = Bool(allowRemoteText) else {
            throw CLIError("allow-remote must be true or false, not \(allowRemoteText)")
        }
        var token: String?
        if let file = config.string(forKey: "token-file") {
            token = try readToken(file)
        }
        var socketGroup: gid_t?
        if let group = config.string(forKey: "socket-group") {
            socketGroup = try groupID(group)
        }
        var limits = Limits.standard
        if let text = config.string(forKey: "max-upload-bytes") {
            limits.maxUploadBytes = try parseBytes(text, setting: "max-upload-bytes")
        }
        var agentConfiguration = AgentConfiguration(
                databasePath: databasePath,
                socketPath: config.string(forKey: "socket") ?? Defaults.socketPath,
                listen: listen,
                artifactsDirectory: config.string(forKey: "artifacts")
                    ?? Defaults.artifactsDirectory(forDatabase: databasePath),
                durability: durability,
                limits: limits,
                sampleInterval: intervalSeconds > 0 ? .milliseconds(Int64(intervalSeconds * 1000)) : nil,
                procRoot: config.string(forKey: "proc-root") ?? "/proc",
                sysRoot: config.string(forKey: "sys-root") ?? "/sys",
                nvmlLibrary: config.string(forKey: "nvml-library") ?? "libnvidia-ml.so.1",
                allowRemote: allowRemote, token: token, socketGroup: socketGroup)
        if let text = config.string(forKey: "ingest-memory-bytes") {
            let bytes = try parseBytes(text, setting: "ingest-memory-bytes")
            guard bytes >= 1 << 20 else { throw CLIError("ingest-memory-bytes must be at least 1M (one batch may need that much), not \(text)") }
            agentConfiguration.ingestMemoryBytes = Int(bytes)
        }
        if let text = config.string(forKey: "retention") {
            agentConfiguration.retention = try parseDuration(text, setting: "retention")
        }
        if let text = config.string(forKey: "max-db-size") {
            agentConfiguration.maxDatabaseBytes = try parseBytes(text, setting: "max-db-size")
        }
        do { try agentConfiguration.checkListener() } catch { throw CLIError(describe(error)) }
        return AgentSettings(agent: agentConfiguration, logLevel: level)
    }

    /// The token in `file`, without surrounding whitespace. A token others can read protects
    /// nothing: a file readable by group or others is refused.
    static func readToken(_ file: String) throws -> String {
        var info = stat()
        guard stat(file, &info) == 0 else { throw CLIError("cannot read the token file \(file): \(String(cString: strerror(errno)))") }
        guard info.st_mode & (S_IRWXG | S_IRWXO) == 0 else {
            throw CLIError("the token file \(file) can be read by other users; chmod 600 it")
        }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw CLIError("cannot read the token file \(file)")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw CLIError("the token file \(file) is empty") }
        return token
    }

    /// "30d", "12h", "90m", "45s" or a number of seconds; more than zero.
    static func parseDuration(_ text: String, setting: String) throws -> Duration {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var number = Substring(text)
        var unit = 1.0
        if let last = text.last, let factor = units[last] {
            number = number.dropLast()
            unit = factor
        }
        // At most about 285 years: beyond, the nanoseconds retention counts back overflow.
        guard let value = Double(number), value.isFinite, value > 0, value * unit < 9e9 else {
            throw CLIError("\(setting) must be a duration such as 30d, 12h, 90m, 45s or a number of seconds, not \(text)")
        }
        return .milliseconds(Int64(value * unit * 1000))
    }

    /// Bytes, or with a K, M or G suffix (powers of 1024); more than zero.
    static func parseBytes(_ text: String, setting: String) throws -> Int64 {
        let units: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        var number = Substring(text)
        var unit = 1.0
        if let last = text.uppercased().last, let factor = units[last] {
            number = number.dropLast()
            unit = factor
        }
        guard let value = Double(number), value.isFinite, value >= 1, value * unit < 9e18 else {
            throw CLIError("\(setting) must be a number of bytes, with K, M or G if you like, not \(text)")
        }
        return Int64(value * unit)
    }

    /// A group by name or number.
    static func groupID(_ group: String) throws -> gid_t {
        if let number = gid_t(group) { return number }
        guard let entry = getgrnam(group) else { throw CLIError("no group named \(group)") }
        return entry.pointee.gr_gid
    }
}

/// The agent keeps /proc and /sys files open between samples; the usual soft limit (1024) is
/// raised to the hard one so that a large trainer's process tree cannot starve SQLite and the
/// listeners of descriptors.
func raiseFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}
