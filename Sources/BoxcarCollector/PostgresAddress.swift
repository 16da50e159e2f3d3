import Foundation
import PostgresNIO

/// `--postgres URL`, as libpq reads one: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, or
/// `postgres:///DATABASE?host=/run/postgresql&user=USER` for a unix socket (its directory, as
/// libpq's `host` takes it). `sslmode` is `disable`, `prefer` (the default), `require`, `verify-ca` or
/// `verify-full`, with `sslrootcert`;
/// `port` and `password` may also come as query parameters. The password never appears in what
/// `redacted` prints.
public struct PostgresAddress: Sendable, CustomStringConvertible {
    public let configuration: PostgresClient.Configuration
    /// The same server for one connection of its own: the collector's probe while PostgreSQL is
    /// away (the pool waits for it in silence; a connection says at once why it cannot).
    public let probe: PostgresConnection.Configuration
    public let description: String

    public init(parsing text: String) throws {
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql" else {
            throw PostgresAddressError("--postgres must be a URL postgres://user@host:port/database, not \(Self.redact(text))")
        }
        let query = Dictionary((url.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        let user = url.user.flatMap { $0.removingPercentEncoding } ?? query["user"] ?? ProcessInfo.processInfo.environment["USER"] ?? "postgres"
        let password = url.password.flatMap { $0.removingPercentEncoding } ?? query["password"]
        let database = url.path.split(separator: "/").first.map(String.init) ?? query["dbname"] ?? user
        guard let port = Int(query["port"] ?? url.port.map(String.init) ?? "5432"), (1...65535).contains(port) else {
            throw PostgresAddressError("--postgres has a port that is not a number from 1 to 65535")
        }
        let host = url.host.flatMap { $0.isEmpty ? nil : $0 } ?? query["host"] ?? "/var/run/postgresql"
        if host.hasPrefix("/") {
            var configuration = PostgresClient.Configuration(
                unixSocketPath: "\(host)/.s.PGSQL.\(port)", username: user, password: password, database: database)
            configuration.options.maximumConnections = 16
            self.configuration = configuration
            probe = PostgresConnection.Configuration(
                unixSocketPath: "\(host)/.s.PGSQL.\(port)", username: user, password: password, database: database)
            description = "postgres://\(user)@/\(database)?host=\(host)&port=\(port)"
            return
        }
        // As libpq: prefer and require encrypt without checking the server's certificate;
        // verify-ca and verify-full check it (against `sslrootcert`, else the system's roots).
        var unverified = TLSConfiguration.makeClientConfiguration()
        unverified.certificateVerification = .none
        var verified = TLSConfiguration.makeClientConfiguration()
        if let root = query["sslrootcert"] { verified.trustRoots = .file(root) }
        let tls: PostgresClient.Configuration.TLS
        let probeTLS: PostgresConnection.Configuration.TLS
        switch query["sslmode"] ?? "prefer" {
        case "disable":
            (tls, probeTLS) = (.disable, .disable)
        case "prefer", "allow":
            (tls, probeTLS) = (.prefer(unverified), .prefer(try NIOSSLContext(configuration: unverified)))
        case "require":
            (tls, probeTLS) = (.require(unverified), .require(try NIOSSLContext(configuration: unverified)))
        case "verify-ca":
            verified.certificateVerification = .noHostnameVerification
            (tls, probeTLS) = (.require(verified), .require(try NIOSSLContext(configuration: verified)))
        case "verify-full":
            (tls, probeTLS) = (.require(verified), .require(try NIOSSLContext(configuration: verified)))
        case let mode:
            throw PostgresAddressError("--postgres sslmode must be disable, prefer, require, verify-ca or verify-full, not \(mode)")
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tls)
        configuration.options.maximumConnections = 16
        self.configuration = configuration
        probe = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: probeTLS)
        description = "postgres://\(user)@\(host):\(port)/\(database)"
    }

    /// The URL with its password replaced by `***`.
    static func redact(_ text: String) -> String {
        guard var url = URLComponents(string: text), url.password != nil else { return text }
        url.password = "***"
        return url.string ?? "(unreadable URL)"
    }
}

public struct PostgresAddressError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
