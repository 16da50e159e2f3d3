#if canImport(Glibc)
import Glibc
#endif
import BoxcarModel
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOPosix

/// Where the services are served: the agent's unix socket, or a TCP address.
public enum Listener: Sendable {
    case unixSocket(path: String)
    case tcp(TCPAddress)

    /// A gRPC server for `services` on this listener. Calls must carry `token` as a bearer token
    /// when one is given, and pass `interceptors`; requests larger than `maxRequestBytes` are
    /// refused by the transport. With `tls` (PEM files), TCP is served over TLS. `gate` counts
    /// its connections with those of the other listeners it is given to, and closes the excess.
    /// Connections are served on `group`'s event loops.
    public func server(
        serving services: [any RegistrableRPCService], token: String?, maxRequestBytes: Int,
        interceptors: [any ServerInterceptor] = [], tls: (certificate: String, key: String)? = nil,
        keepalive: HTTP2ServerTransport.Config.Keepalive? = nil, gate: ConnectionGate? = nil,
        group: MultiThreadedEventLoopGroup = .singletonMultiThreadedEventLoopGroup
    ) -> GRPCServer<HTTP2ServerTransport.Posix> {
        let config = HTTP2ServerTransport.Posix.Config.defaults {
            $0.rpc.maxRequestPayloadSize = maxRequestBytes
            $0.http2.maxConcurrentStreams = ConnectionLimits.maxConcurrentStreams
            $0.connection.maxIdleTime = gate?.idleTimeout ?? ConnectionLimits().idleTimeout
            // A peer gone without a word (a machine off the network) holds its connection until a
            // ping goes unanswered: after a minute of silence rather than gRPC's two hours.
            $0.connection.keepalive = keepalive ?? .init(time: .seconds(60), timeout: .seconds(20), clientBehavior: .defaults)
            if let gate {
                let plaintext = tls == nil
                $0.channelDebuggingCallbacks.onAcceptTCPConnection = { gate.admit($0, explains: plaintext) }
                $0.channelDebuggingCallbacks.onAcceptHTTP2Stream = { gate.opened($0) }
            }
        }
        let transport: HTTP2ServerTransport.Posix
        switch self {
        case .unixSocket(let path):
            transport = .http2NIOPosix(
                address: .unixDomainSocket(path: path), transportSecurity: .plaintext, config: config,
                eventLoopGroup: group)
        case .tcp(let tcp):
            let security: HTTP2ServerTransport.Posix.TransportSecurity =
                if let tls {
                    .tls(certificateChain: [.file(path: tls.certificate, format: .pem)], privateKey: .file(path: tls.key, format: .pem))
                } else { .plaintext }
            transport = .http2NIOPosix(
                address: tcp.host.contains(":") ? .ipv6(host: tcp.host, port: tcp.port) : .ipv4(host: tcp.host, port: tcp.port),
                transportSecurity: security, config: config, eventLoopGroup: group)
        }
        return GRPCServer(
            transport: transport,
            services: services,
            interceptors: (token.map { [BearerTokenInterceptor(token: $0)] } ?? []) + interceptors + (gate.map { [$0.interceptor] } ?? []))
    }
}

extension GRPCServer where Transport == HTTP2ServerTransport.Posix {
    /// The address bound, as the agent logs it: "unix:///…", "127.0.0.1:7070", "[::1]:7070".
    public var boundAddress: String {
        get async throws {
            let address = try await transport.listeningAddress
            if let unix = address.unixDomainSocket { return "unix://\(unix.path)" }
            if let ipv4 = address.ipv4 { return "\(ipv4.host):\(ipv4.port)" }
            if let ipv6 = address.ipv6 { return "[\(ipv6.host)]:\(ipv6.port)" }
            return "\(address)"
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
    public var isLoopback: Bool { Self.isLoopback(host: host) }

    /// Whether `host` is a loopback address written as one: a name that merely starts with
    /// "127." (`127.example.org`) is another machine's.
    public static func isLoopback(host: String) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        var address = in_addr()
        return inet_pton(AF_INET, host, &address) == 1 && UInt32(bigEndian: address.s_addr) >> 24 == 127
    }
}
