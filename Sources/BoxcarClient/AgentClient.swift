import BoxcarAPI
import BoxcarEventLoop
import BoxcarModel
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOPosix

// BoxcarClient: a Swift client of the agent over its socket or TCP, for the command line, the
// tests and the benchmark. It speaks the wire types of BoxcarAPI; it knows nothing of the store
// or the server's insides.

/// Where an agent listens: its unix socket, or a TCP address.
public enum AgentTarget: Sendable, CustomStringConvertible {
    case unixSocket(String)
    case tcp(host: String, port: Int)

    public var description: String {
        switch self {
        case .unixSocket(let path): return "unix://\(path)"
        case .tcp(let host, let port): return "\(host):\(port)"
        }
    }
}

/// A connection to a running agent, with the generated clients of both services and the reads
/// the CLI needs as domain values.
public struct AgentClient: Sendable {
    public let target: AgentTarget
    public let modelStore: Modelbox_ModelStore.Client<HTTP2ClientTransport.Posix>
    public let agent: Boxcar_V1_Agent.Client<HTTP2ClientTransport.Posix>

    /// The largest response accepted: a GetMetrics answer for a long run is large.
    public static let maxResponseBytes = 512 * 1024 * 1024

    /// Connects, runs `body`, and closes the connection.
    /// - Parameters:
    ///   - token: sent as `authorization: Bearer <token>` on every call (an agent's `--listen`
    ///     with `--token-file`, a collector's token file).
    ///   - caFile: a PEM file of the certificate authorities to trust: TLS over TCP (a collector
    ///     with `--tls-cert`). nil: plaintext.
    ///   - onItsEventLoop: run `body` and its calls on the connection's event loop, one of NIO's
    ///     shared loops, which saves two thread wake-ups a call (many small calls: the
    ///     benchmark's ingest-unary). `body` must then not block: every channel on that loop
    ///     waits while it does, and NIO traps a `.wait()` there.
    public static func with<R: Sendable>(
        _ target: AgentTarget, token: String? = nil, caFile: String? = nil, onItsEventLoop: Bool = false,
        _ body: (AgentClient) async throws -> R
    ) async throws -> R {
        let resolvable: any ResolvableTarget
        var security: HTTP2ClientTransport.Posix.TransportSecurity = .plaintext
        switch target {
        case .unixSocket(let path): resolvable = .unixDomainSocket(path: path)
        case .tcp(let host, let port):
            resolvable =
                if host.contains(":") { .ipv6(address: host, port: port) }
                else if host.split(separator: ".").count == 4 && host.allSatisfy({ $0.isNumber || $0 == "." }) {
                    .ipv4(address: host, port: port)
                } else { .dns(host: host, port: port) }
            if let caFile {
                security = .tls(.defaults { $0.trustRoots = .certificates([.file(path: caFile, format: .pem)]) })
            }
        }
        // The transport's "request" limit bounds what the client receives.
        var serviceConfig = ServiceConfig()
        serviceConfig.methodConfig = [
            MethodConfig(names: [MethodConfig.Name(service: "")], maxRequestMessageBytes: maxResponseBytes)
        ]
        let loop = onItsEventLoop ? MultiThreadedEventLoopGroup.singleton.next() : nil
        let transport = try HTTP2ClientTransport.Posix(
            target: resolvable, transportSecurity: security, serviceConfig: serviceConfig,
            eventLoopGroup: loop ?? MultiThreadedEventLoopGroup.singleton)
        let interceptors: [any ClientInterceptor] = token.map { [BearerTokenInterceptor(token: $0)] } ?? []
        // A nil preference leaves the tasks where they were.
        return try await withTaskExecutorPreference(loop.map(EventLoopExecutor.init)) {
            try await withGRPCClient(transport: transport, interceptors: interceptors) { client in
                try await body(AgentClient(
                    target: target, modelStore: .init(wrapping: client), agent: .init(wrapping: client)))
            }
        }
    }

    // MARK: Reads as domain values

    public func experiments(namespace: String?) async throws -> [Experiment] {
        try await agent.listExperiments(.with { request in
            if let namespace { request.namespace = namespace }
        }).experiments.map(\.domain)
    }

    public func metrics(parentID: String, keys: [String]?) async throws -> [(key: String, columns: MetricColumns)] {
        try await metrics(parentID: parentID, keys: keys, steps: nil)
    }

    /// The series' points whose steps are within `steps` (all when nil).
    public func metrics(parentID: String, keys: [String]?, steps: ClosedRange<UInt64>?) async throws -> [(key: String, columns: MetricColumns)] {
        let response = try await agent.queryMetrics(.with {
            $0.parentID = parentID
            $0.keys = keys ?? []
            if let steps {
                // The wire's bounds are signed, and `to` = 0 means none: steps past Int64.max are
                // asked with no upper bound and the excess dropped here.
                $0.from = Int64(clamping: steps.lowerBound)
                $0.to = steps.upperBound >= UInt64(Int64.max) || steps.upperBound == 0 ? 0 : Int64(steps.upperBound)
            }
        })
        return response.series.map { series -> (key: String, columns: MetricColumns) in
            var columns = series.columns
            if let steps, steps.upperBound == 0 || steps.upperBound >= UInt64(Int64.max) {
                columns = columns.selecting((0..<columns.count).filter { steps.contains(columns.steps[$0]) })
            }
            return (key: series.key, columns: columns)
        }
    }

    /// The first and last step of the parent's series `key`: the agent answers each series of
    /// the key (an experiment's own and the machine's may share it) with its first and last points.
    public func stepExtent(parentID: String, key: String) async throws -> ClosedRange<UInt64>? {
        let steps = try await agent.queryMetrics(.with {
            $0.parentID = parentID
            $0.keys = [key]
            $0.maxPoints = 2
        }).series.filter { $0.key == key }.flatMap(\.step)
        guard let first = steps.min(), let last = steps.max() else { return nil }
        return first...last
    }

    /// Asks for at most two points a series: the agent answers each key with its first and last.
    public func metricKeys(parentID: String) async throws -> [String] {
        try await agent.queryMetrics(.with {
            $0.parentID = parentID
            $0.maxPoints = 2
        }).series.map(\.key)
    }

    public func events(parentID: String) async throws -> [Event] {
        try await modelStore.listEvents(.with { $0.parentID = parentID }).events.map {
            $0.domain(parentID: parentID)
        }
    }

    public func files(parentID: String) async throws -> [FileRecord] {
        try await modelStore.listArtifacts(.with { $0.parentID = parentID }).files.map(\.domain)
    }

}

/// Adds the token to every call.
struct BearerTokenInterceptor: ClientInterceptor {
    let token: String

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>, context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        request.metadata.addString("Bearer \(token)", forKey: "authorization")
        return try await next(request, context)
    }
}
