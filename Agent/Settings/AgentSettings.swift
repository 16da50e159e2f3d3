#if canImport(Glibc)
import Glibc
#endif
import BoxcarForwarding
import BoxcarModel
import BoxcarServer
import BoxcarStore
import Configuration
import FoundationEssentials
import Logging
import SystemPackage

/// The agent's settings after applying flag > environment > file > default, each setting read
/// through its one declaration in `all`.
struct AgentSettings: Sendable {
    var agent = AgentConfiguration(databasePath: "", socketPath: "", artifactsDirectory: "")
    var logLevel = Logger.Level.info

    /// Every setting, in the order they are applied and documented: the paths first (a default may
    /// depend on one before it), then those that are checked, in the order their errors have
    /// always been reported.
    static let all: [Setting] = [
        Setting(
            "db", .value(placeholder: "PATH"),
            default: "`$XDG_DATA_HOME/boxcar/boxcar.db`, else `~/.local/share/boxcar/boxcar.db`",
            computed: { _ in Defaults.databasePath },
            help: "the SQLite database",
            note: "The SQLite database holding everything the agent records.",
            example: "/var/lib/boxcar/boxcar.db"
        ) { text, settings in settings.agent.databasePath = text },
        Setting(
            "socket", .value(placeholder: "PATH"),
            default: "`$XDG_RUNTIME_DIR/boxcar/agent.sock`, else `/tmp/boxcar-<uid>/agent.sock`",
            computed: { _ in Defaults.socketPath },
            help: "the unix socket",
            note: "The unix socket serving the ModelBox API and Boxcar's own API (gRPC target unix:///…).",
            example: "/run/boxcar/agent.sock"
        ) { text, settings in settings.agent.socketPath = text },
        Setting(
            "artifacts", .value(placeholder: "DIR"), default: "`artifacts/` beside the database",
            computed: { settings in Defaults.artifactsDirectory(forDatabase: settings.agent.databasePath) },
            help: "uploaded files, stored by content",
            note: "Where uploaded artifacts are stored, by content (blobs/<2 hex>/<sha256>).",
            example: "/var/lib/boxcar/artifacts"
        ) { text, settings in settings.agent.artifactsDirectory = text },
        Setting(
            "durability", .value(placeholder: "normal|full"), default: "`normal`", value: "normal",
            help: "`normal` survives a crash of the agent; `full` also power loss",
            note: """
                normal: a commit survives a crash of the agent (SQLite synchronous=NORMAL, WAL).
                full:   a commit also survives power loss, at an fsync per commit (synchronous=FULL).
                """,
            example: "normal"
        ) { text, settings in
            guard let durability = Durability(rawValue: text) else {
                throw CLIError("durability must be normal or full, not \(text)")
            }
            settings.agent.durability = durability
        },
        Setting(
            "log-level", .value(placeholder: "LEVEL"), default: "`info`", value: "info",
            help: "trace … critical",
            note: "trace, debug, info, notice, warning, error or critical. Logs go to stderr.",
            example: "info"
        ) { text, settings in
            guard let level = Logger.Level(rawValue: text) else {
                throw CLIError("log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not \(text)")
            }
            settings.logLevel = level
        },
        Setting(
            "sample-interval", .value(placeholder: "SECONDS"), default: "`1`", value: "1",
            help: "how often the machine is sampled, 0.01 to 3600 s; `0` turns sampling off",
            note: "Seconds between samples of the machine, 0.01 to 3600 (fractions allowed); 0 turns sampling off.",
            example: "1"
        ) { text, settings in
            // A tick under 10 ms would be all the agent did (one takes about 0.5 ms of CPU), and
            // one over an hour is a mistaken unit; neither may pass as something else.
            guard let seconds = Double(text), seconds == 0 || (0.01...3600).contains(seconds) else {
                throw CLIError("sample-interval must be 0 (sampling off) or 0.01 to 3600 seconds, not \(text)")
            }
            settings.agent.sampleInterval = seconds > 0 ? .milliseconds(Int64(seconds * 1000)) : nil
        },
        Setting(
            "listen", .value(placeholder: "HOST:PORT"), default: "off", value: nil,
            help: "also serve on TCP (plaintext); loopback only unless `--allow-remote`",
            note: """
                Also serve both APIs on TCP at HOST:PORT, without TLS. Loopback only (127.0.0.1, ::1,
                localhost) unless allow-remote is true, which then needs token-file.
                """,
            example: "127.0.0.1:7070"
        ) { text, settings in
            guard !text.isEmpty else { return }
            do { settings.agent.listen = try TCPAddress(parsing: text) } catch { throw CLIError(describe(error)) }
        },
        Setting(
            "http", .value(placeholder: "HOST:PORT"), default: "off", value: nil,
            help: "serve the pages of the runs at `/`, `/metrics` (Prometheus text or OpenMetrics), `/healthz` and `/readyz` over HTTP; loopback only unless `--allow-remote`",
            note: """
                Serve the experiments' pages at / (charts, events, metadata, artifacts), GET /metrics
                (the machine's latest values and the agent's own health, in the Prometheus text format
                or OpenMetrics as the scraper asks), /healthz and /readyz on HTTP at HOST:PORT. Loopback
                only unless allow-remote is true; with token-file, the pages and /metrics ask for
                `Authorization: Bearer <token>`, or a browser signed in once at /login.
                """,
            example: "127.0.0.1:9464"
        ) { text, settings in
            guard !text.isEmpty else { return }
            do { settings.agent.http = try TCPAddress(parsing: text) } catch { throw CLIError(describe(error)) }
        },
        Setting(
            "allow-remote", .flag, default: "`false`", value: "false",
            help: "let `--listen` and `--http` take another address; needs `--token-file`",
            note: """
                Let listen take an address other than loopback. Every call on the TCP listener must then
                carry `authorization: Bearer <token>` (the Python SDK: Boxcar(token=…) or BOXCAR_TOKEN).
                """,
            example: "true"
        ) { text, settings in settings.agent.allowRemote = try Setting.bool(text, "allow-remote") },
        Setting(
            "token-file", .value(placeholder: "PATH"), default: "none", value: nil,
            help: "a mode-0600 file holding the bearer token every TCP call must carry (`authorization: Bearer …`, compared in constant time, never logged)",
            note: """
                The file holding that token (mode 0600: a file others can read is refused). The token is
                asked of TCP calls whenever it is set, and never logged.
                """,
            example: "/etc/boxcar/token"
        ) { text, settings in settings.agent.token = try readToken(text) },
        Setting(
            "socket-group", .value(placeholder: "GROUP"), default: "none", value: nil,
            help: "a group given the socket and its directory: directory 0750, socket 0660 (default: directory 0700, socket 0660)",
            note: """
                A group given access to the socket: its directory becomes 0750 and the socket 0660 with that
                group. Without it the directory is 0700 and the socket 0660.
                """,
            example: "boxcar"
        ) { text, settings in settings.agent.socketGroup = try Setting.groupID(text) },
        Setting(
            "max-upload-bytes", .value(placeholder: "BYTES"), default: "`16G`", value: "16G",
            help: "the largest file one upload may hold (bytes, or `K`, `M`, `G`)",
            note: """
                The largest file one upload may hold, in bytes or with K, M, G; a larger one is refused with
                RESOURCE_EXHAUSTED and leaves nothing behind.
                """,
            example: "16G"
        ) { text, settings in settings.agent.limits.maxUploadBytes = try Setting.bytes(text, "max-upload-bytes") },
        Setting(
            "max-connections", .value(placeholder: "N"), default: "`1024`", value: "1024",
            help: "client connections held at once, over every listener; the next are closed as they come",
            note: """
                Client connections held at once, over every listener (at least 1): the next are closed as
                they come, and the log says so. Lowered to fit the descriptor limit, keeping 256 for the
                store and the sensors.
                """,
            example: "1024"
        ) { text, settings in
            guard let count = Int(text), (1...1_000_000).contains(count) else {
                throw CLIError("max-connections must be a whole number from 1 to 1000000, not \(text)")
            }
            settings.agent.connections.maxConnections = count
        },
        Setting(
            "connection-idle-timeout", .value(placeholder: "SECONDS"), default: "`300`", value: "300",
            help: "a connection with no call open this long is closed (clients reconnect), 1 to 86400 s",
            note: """
                Seconds a client connection may stay open without a call, 1 to 86400; then it is closed
                (clients reconnect at their next call). One that never starts HTTP/2 counts as idle.
                """,
            example: "300"
        ) { text, settings in
            guard let seconds = Double(text), (1...86_400).contains(seconds) else {
                throw CLIError("connection-idle-timeout must be 1 to 86400 seconds, not \(text)")
            }
            settings.agent.connections.idleTimeout = .milliseconds(Int64(seconds * 1000))
        },
        Setting(
            "stream-stall-timeout", .value(placeholder: "SECONDS"), default: "`60`", value: "60",
            help: "a stream whose client takes nothing of what it has to send, or sends nothing more of a message it began, this long is ended, 1 to 86400 s",
            note: """
                Seconds a stream may hold a response its client takes nothing of (a download or a
                WatchNamespace it stopped reading), or a request message its client sends nothing more of,
                1 to 86400; then the stream is reset (the client sees CANCELLED, the agent's log and call
                counts DEADLINE_EXCEEDED), freeing what it held.
                """,
            example: "60"
        ) { text, settings in
            guard let seconds = Double(text), (1...86_400).contains(seconds) else {
                throw CLIError("stream-stall-timeout must be 1 to 86400 seconds, not \(text)")
            }
            settings.agent.connections.stallTimeout = .milliseconds(Int64(seconds * 1000))
        },
        Setting(
            "ingest-memory-bytes", .value(placeholder: "BYTES"), default: "`128M`", value: "128M",
            help: "requests and Log batches held for clients before their commit, across all streams; streams past it wait (at least `1M`)",
            note: """
                Bytes of requests (as they arrive, half of it) and Log batches (until they commit, the other
                half) the agent holds for clients, across every stream: a stream whose next message finds no
                room waits, and flow control slows its client. Bytes or with K, M, G; at least 1M.
                """,
            example: "128M"
        ) { text, settings in
            let bytes = try Setting.bytes(text, "ingest-memory-bytes")
            guard bytes >= 1 << 20 else {
                throw CLIError("ingest-memory-bytes must be at least 1M (one batch may need that much), not \(text)")
            }
            settings.agent.ingestMemoryBytes = Int(bytes)
        },
        Setting(
            "retention", .value(placeholder: "DURATION"), default: "`30d`", value: "30d",
            help: "how long the machine's own series (`host`) are kept: `30d`, `12h`, `90m`, `45s`, seconds, or `none` (for ever)",
            note: """
                How long the machine's own series (parent `host`) are kept: 30d, 12h, 90m, 45s, seconds, or
                none (for ever). Their points inside the windows trainers were attached to an experiment are
                kept as long as the experiment (for ever); experiments' own data is never removed.
                """,
            example: "30d"
        ) { text, settings in
            settings.agent.retention = text == "none" ? nil : try Setting.duration(text, "retention")
        },
        Setting(
            "head-ticks", .value(placeholder: "N"), default: "`600`", value: "600",
            help: "ticks sampled before they are compacted into a compressed block per series, 2 to 100000",
            note: """
                How many ticks of the sampler a parent's head holds (a row a tick, 8 bytes a value) before
                they are compacted into a compressed block per series (a few bits a block for a constant
                series). More: fewer, better compressed blocks and a larger head.
                """,
            example: "600"
        ) { text, settings in
            guard let ticks = Int(text), (2...100_000).contains(ticks) else {
                throw CLIError("head-ticks must be a whole number from 2 to 100000, not \(text)")
            }
            settings.agent.headTicks = ticks
        },
        Setting(
            "max-db-size", .value(placeholder: "BYTES"), default: "none", value: nil,
            help: "the most the database may use (bytes, or `K`, `M`, `G`); the oldest machine points go first",
            note: """
                The most the database may use, in bytes or with K, M, G: the oldest machine points go first,
                a tenth of their span at a time (a second to ten minutes). Experiments' data is never removed.
                """,
            example: "10G"
        ) { text, settings in settings.agent.maxDatabaseBytes = try Setting.bytes(text, "max-db-size") },
        Setting(
            "upstream", .value(placeholder: "TARGET[,TARGET…]"), default: "none (nothing forwarded)", value: nil,
            help: "collectors to forward everything to (`host:port` or `unix:///path`), used in turn when one fails",
            note: """
                Collectors (boxcar collector) to forward every record to, as host:port or unix:///path,
                comma-separated: collectors of the same PostgreSQL, used in turn when one fails. The database
                is the outbox: nothing is lost while they are away.
                """,
            example: "collector.example.org:7443"
        ) { text, settings in
            do {
                settings.agent.upstream.targets = try text.split(separator: ",").map {
                    try UpstreamTarget(parsing: trimmed($0))
                }
            } catch { throw CLIError(describe(error)) }
        },
        Setting(
            "upstream-token-file", .value(placeholder: "PATH"), default: "none", value: nil,
            help: "a mode-0600 file holding the token sent to the upstream",
            note: "The file (mode 0600) holding the token this agent sends to its collectors.",
            example: "/etc/boxcar/upstream-token"
        ) { text, settings in settings.agent.upstream.token = try readToken(text) },
        Setting(
            "upstream-ca", .value(placeholder: "FILE"), default: "none (plaintext)", value: nil,
            help: "a PEM file of the authorities to trust: TLS to every TCP upstream",
            note: "A PEM file of the certificate authorities to trust: with it, TCP upstreams are reached over TLS.",
            example: "/etc/boxcar/ca.pem"
        ) { text, settings in
            guard access(text, R_OK) == 0 else { throw CLIError("cannot read the upstream CA file \(text)") }
            settings.agent.upstream.caFile = text
        },
        Setting(
            "label", .value(placeholder: "KEY=VALUE"), default: "`host=<hostname>`", value: nil,
            help: "a label carried with every forwarded record; repeat it, or separate with commas",
            note: "Labels carried with every forwarded record, KEY=VALUE, comma-separated; host is the host name unless set.",
            example: "cluster=a100-east,rack=r17"
        ) { text, settings in
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1).map(trimmed)
                guard parts.count == 2, !parts[0].isEmpty else { throw CLIError("label must be KEY=VALUE, not \(pair)") }
                settings.agent.upstream.labels[parts[0]] = parts[1]
            }
        },
        Setting(
            "remote-write", .value(placeholder: "URL[,URL…]"), default: "none", value: nil,
            help: "push the machine's series of `/metrics` to each URL as Prometheus remote write 1.0 (Prometheus, VictoriaMetrics, Mimir, Thanos); repeat it, or separate with commas",
            note: """
                Where the machine's series are pushed as Prometheus remote write 1.0, from the database,
                in order, resuming where they stopped (comma-separated URLs).
                """,
            example: "http://127.0.0.1:9090/api/v1/write"
        ) { text, settings in
            for url in text.split(separator: ",").map(trimmed) where !url.isEmpty {
                guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                    throw CLIError("remote-write must be an http:// or https:// URL, not \(url)")
                }
                // The same URL twice would send every point twice, on one cursor.
                if !settings.agent.remoteWrite.urls.contains(url) { settings.agent.remoteWrite.urls.append(url) }
            }
        },
        Setting(
            "remote-write-token-file", .value(placeholder: "PATH"), default: "none", value: nil,
            help: "a mode-0600 file holding the token sent as `Authorization: Bearer …` with each remote write",
            note: "The file (mode 0600) holding the bearer token sent with each remote write.",
            example: "/etc/boxcar/remote-write-token"
        ) { text, settings in settings.agent.remoteWrite.token = try readToken(text) },
        Setting(
            "remote-write-header", .value(placeholder: "'NAME: VALUE'"), default: "none", value: nil,
            help: "a header sent with each remote write (`X-Scope-OrgID: team-a` for Mimir); repeat it, or separate with newlines",
            note: "Headers sent with each remote write, NAME: VALUE, one per line.",
            example: "'X-Scope-OrgID: team-a'"
        ) { text, settings in
            for line in text.split(separator: "\n") where !line.allSatisfy(\.isWhitespace) {
                let parts = line.split(separator: ":", maxSplits: 1).map(trimmed)
                guard parts.count == 2, !parts[0].isEmpty, !parts[0].contains(" ") else {
                    throw CLIError("remote-write-header must be NAME: VALUE, not \(line)")
                }
                settings.agent.remoteWrite.headers.append((parts[0], parts[1]))
            }
        },
        Setting(
            "remote-write-processes", .flag, default: "`false`", value: "false",
            help: "also push each attached trainer's process series (its tree's totals and its processes' GPU memory, with `experiment_id`); its cgroup goes without it",
            note: """
                Also push each attached trainer's process series: its process-tree totals and its processes'
                GPU memory, with experiment_id. Its cgroup's series go without this flag.
                """,
            example: "true"
        ) { text, settings in settings.agent.remoteWrite.processes = try Setting.bool(text, "remote-write-processes") },
        Setting(
            "upstream-host-series", .value(placeholder: "attached|all|none"), default: "`attached`", value: "attached",
            help: "which of the machine's series are forwarded: those inside attached experiments' windows, all, or none",
            note: """
                Which of the machine's own series are forwarded: attached (inside the windows trainers were
                attached to an experiment), all, or none.
                """,
            example: "attached"
        ) { text, settings in
            guard let mode = Store.HostSeriesForwarding(rawValue: text) else {
                throw CLIError("upstream-host-series must be attached, all or none, not \(text)")
            }
            settings.agent.upstream.hostSeries = mode
        },
        Setting(
            "upstream-from", .value(placeholder: "all|now"), default: "`all`", value: "all",
            help: "whether what the database held before forwarding was first turned on is shipped (`all`) or not (`now`)",
            note: "all: forward what the database held before forwarding was first turned on; now: only what comes after.",
            example: "all"
        ) { text, settings in
            guard text == "all" || text == "now" else { throw CLIError("upstream-from must be all or now, not \(text)") }
            settings.agent.upstream.fromNow = text == "now"
        },
        Setting(
            "proc-root", .value(placeholder: "DIR"), default: "`/proc`", value: "/proc",
            help: "where /proc is read (a fixture tree in tests)",
            note: """
                Where /proc is read: the host's own by default; another tree to watch a container's host
                mount, or a fixture tree in tests.
                """,
            example: "/proc"
        ) { text, settings in settings.agent.procRoot = text },
        Setting(
            "sys-root", .value(placeholder: "DIR"), default: "`/sys`", value: "/sys",
            help: "where /sys is read",
            note: "Where /sys is read, as proc-root.",
            example: "/sys"
        ) { text, settings in settings.agent.sysRoot = text },
        Setting(
            "network-loopback", .flag, default: "`false`", value: "false",
            help: "sample the loopback interface too (traffic between processes of this machine)",
            note: """
                Sample the loopback interface beside the physical ones: the traffic between processes of
                this machine (NCCL within a node, a data loader's server).
                """,
            example: "true"
        ) { text, settings in settings.agent.networkLoopback = try Setting.bool(text, "network-loopback") },
        Setting(
            "nvml-library", .value(placeholder: "PATH"), default: "`libnvidia-ml.so.1`", value: "libnvidia-ml.so.1",
            help: "the NVML library loaded with dlopen",
            note: "The NVML library, loaded with dlopen; absent: no NVIDIA GPU series, the agent runs on.",
            example: "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"
        ) { text, settings in settings.agent.nvmlLibrary = text },
        Setting(
            "config", .value(placeholder: "FILE"), default: "none", value: nil,
            help: "the YAML file with the keys above",
            note: "This file (flag and environment only).", example: "/etc/boxcar/boxcar.yaml", inFile: false
        ) { _, _ in },
    ]

    /// The settings from the command line's `flags` (name → text), the environment and the
    /// configuration file they name.
    static func resolve(flags: [String: String], environment: [String: String]) async throws -> AgentSettings {
        var file: ConfigReader?
        if let path = flags["config"] ?? environment["BOXCAR_CONFIG"] {
            let text: String
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw CLIError("cannot read the configuration file \(path): \(describe(error))")
            }
            try ConfigurationFile.check(text, path: path, settings: all)
            do {
                file = ConfigReader(provider: try await FileProvider<YAMLSnapshot>(filePath: FilePath(path)))
            } catch {
                throw CLIError("cannot read the configuration file \(path): \(error)")
            }
        }
        return try resolve(flags: flags, environment: environment) { file?.string(forKey: ConfigKey($0)) }
    }

    /// Each setting from its flag, else the environment, else `file` (key → text), else its
    /// default, in the order of `all`.
    static func resolve(
        flags: [String: String], environment: [String: String], file: (String) -> String?
    ) throws -> AgentSettings {
        var settings = AgentSettings()
        for setting in all {
            let text = flags[setting.name] ?? environment[setting.environmentName]
                ?? (setting.inFile ? file(setting.name) : nil)
                ?? setting.defaultValue(settings)
            if let text { try setting.apply(text, &settings) }
        }
        do {
            try settings.agent.checkListener()
            try settings.agent.checkUpstream()
            try settings.agent.checkRemoteWrite()
        } catch {
            throw CLIError(describe(error))
        }
        return settings
    }

    /// The command line's settings: `--name VALUE`, `--name=VALUE`, and `--name` for a flag.
    static func flags(_ arguments: [String]) throws -> [String: String] {
        var flags: [String: String] = [:]
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("--") else {
                throw CLIError("unexpected argument \(argument): `boxcar agent --help` lists the settings")
            }
            let body = argument.dropFirst(2)
            let name = String(body.prefix { $0 != "=" })
            let inline = body.firstIndex(of: "=").map { String(body[body.index(after: $0)...]) }
            guard let setting = all.first(where: { $0.name == name }) else {
                throw CLIError("unknown option --\(name): `boxcar agent --help` lists the settings")
            }
            switch setting.kind {
            case .flag:
                flags[name] = inline ?? "true"
            case .value:
                guard let value = inline ?? rest.popFirst() else { throw CLIError("--\(name) needs a value") }
                // --label and --remote-write may be repeated: each adds its own; so may
                // --remote-write-header, one a line (a header's value may hold commas).
                if name == "label" || name == "remote-write", let earlier = flags[name] {
                    flags[name] = earlier + "," + value
                } else if name == "remote-write-header", let earlier = flags[name] {
                    flags[name] = earlier + "\n" + value
                } else {
                    flags[name] = value
                }
            }
        }
        return flags
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
        let token = trimmed(text)
        guard !token.isEmpty else { throw CLIError("the token file \(file) is empty") }
        return token
    }
}

/// The text without the white space around it.
func trimmed<S: StringProtocol>(_ text: S) -> String {
    String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
}
