#if canImport(Glibc)
import Glibc
#endif
import BoxcarForwarding
import BoxcarModel
import BoxcarSampling
import BoxcarServer
import BoxcarStore

/// What the agent needs to run; `boxcar agent` fills it from flags, environment and file.
struct AgentConfiguration: Sendable {
    var databasePath: String
    var socketPath: String
    /// A TCP address to serve too ("127.0.0.1:7070"); nil: the unix socket only.
    var listen: TCPAddress?
    var artifactsDirectory: String
    var durability: Durability
    var limits: Limits
    /// How often the machine is sampled; nil: not at all.
    var sampleInterval: Duration?
    /// Where /proc and /sys are read ("/proc" and "/sys"; a fixture tree in tests).
    var procRoot: String
    var sysRoot: String
    /// Whether the loopback interface is sampled beside the physical ones.
    var networkLoopback = false
    /// The NVML library to dlopen.
    var nvmlLibrary: String
    /// Whether `listen` may be an address other than loopback (then `token` is required).
    var allowRemote: Bool
    /// The bearer token every call on the TCP listener must carry; nil: none asked.
    var token: String?
    /// The group given access to the socket (its directory becomes 0750, the socket 0660).
    var socketGroup: gid_t?
    /// Bytes of Log batches accepted and not yet committed, across every stream; a stream past
    /// it waits (backpressure), so clients faster than the disk are slowed, not buffered.
    var ingestMemoryBytes: Int = 128 << 20
    var connections = ConnectionLimits()
    /// The machine's own series are kept this long; nil: for ever.
    var retention: Duration?
    /// Ticks a parent's head holds before they are compacted into a block per series.
    var headTicks = Compaction.defaultTicksPerBlock
    /// The most bytes the database may use; the oldest host points go first. nil: no limit.
    var maxDatabaseBytes: Int64?
    /// Where the machine's series are pushed as remote write; no URLs: nowhere.
    var remoteWrite = RemoteWriteSettings()
    /// Where /metrics, /healthz and /readyz are served over HTTP; nil: nowhere.
    var http: TCPAddress?
    /// Where everything is forwarded; no targets: nowhere.
    var upstream = UpstreamConfiguration(targets: [])

    init(
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

    /// `--remote-write` and the settings that go with it.
    struct RemoteWriteSettings: Sendable {
        var urls: [String] = []
        var token: String?
        var headers: [(name: String, value: String)] = []
        var processes = false
    }

    /// Refuses to send the remote-write token in the clear to another machine.
    func checkRemoteWrite() throws {
        guard remoteWrite.token != nil else { return }
        for url in remoteWrite.urls where url.hasPrefix("http://") {
            let authority = url.dropFirst("http://".count).prefix { $0 != "/" }
            var host = String(authority.split(separator: "@").last ?? "")
            if host.hasPrefix("[") { host = String(host.dropFirst().prefix { $0 != "]" }) } else { host = String(host.prefix { $0 != ":" }) }
            guard TCPAddress.isLoopback(host: host) else {
                throw ValidationError("--remote-write-token-file would send the token in the clear to \(host): use an https:// URL")
            }
        }
    }

    /// Refuses to send the upstream token in the clear to another machine.
    func checkUpstream() throws {
        guard upstream.token != nil, upstream.caFile == nil else { return }
        for case .tcp(let host, _) in upstream.targets where !TCPAddress.isLoopback(host: host) {
            throw ValidationError(
                "--upstream-token-file would send the token in the clear to \(host): give --upstream-ca for TLS")
        }
    }

    /// Refuses a TCP listener that would open the API to the network without a token.
    func checkListener() throws {
        if let http, !http.isLoopback, !allowRemote {
            throw ValidationError(
                "serving HTTP on \(http) would open /metrics to other machines: use 127.0.0.1 or ::1, or pass --allow-remote with --token-file")
        }
        guard listen != nil || http != nil else { return }
        if let listen, !listen.isLoopback, !allowRemote {
            throw ValidationError(
                "listening on \(listen) would open the API to other machines: listen on 127.0.0.1 or ::1, or pass --allow-remote with --token-file")
        }
        if allowRemote && token == nil {
            throw ValidationError("--allow-remote needs --token-file: every call from another machine must carry the token")
        }
    }
}
