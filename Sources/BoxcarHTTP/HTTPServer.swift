import BoxcarExposition
import BoxcarModel
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

// BoxcarHTTP: `--http`, what monitoring stacks and probes reach over HTTP/1.1 (Hummingbird):
//
//   GET /metrics   the exposition page, Prometheus text 0.0.4 or OpenMetrics 1.0 as `Accept` asks
//   GET /healthz   200 while the process runs
//   GET /readyz    200 when it can take work (store writable, socket served), else 503 and why
//
// Anything else is 404 (unknown path) or 405 (another method). A request with a body is 413: none
// of these takes one. A connection idle for `idleTimeout` (15 s) is closed, and at most
// `maxConnections` (64) are held, so a client that connects and says nothing holds no more than that.

/// What the endpoints answer with; the process that serves them fills it in.
public struct HTTPEndpoints: Sendable {
    /// The page in the format asked for.
    public var metrics: @Sendable (ExpositionFormat) async -> [UInt8]
    /// nil when ready, else why not (said in the 503's body).
    public var readiness: @Sendable () async -> String?

    public init(
        metrics: @escaping @Sendable (ExpositionFormat) async -> [UInt8],
        readiness: @escaping @Sendable () async -> String?
    ) {
        self.metrics = metrics
        self.readiness = readiness
    }
}

public struct HTTPServer: Sendable {
    public var host: String
    public var port: Int
    /// Whether the `Authorization` header of a /metrics request may read it (the probes stay
    /// open: they say only whether the process runs).
    public var authorize: @Sendable (String?) -> Bool
    public var endpoints: HTTPEndpoints
    /// A connection that sends nothing for this long is closed (Prometheus reconnects).
    public var idleTimeout: TimeAmount = .seconds(15)
    public var maxConnections = 64
    public var logger: Logger

    /// `token`: the bearer token /metrics asks for; nil: none.
    public init(host: String, port: Int, token: String?, endpoints: HTTPEndpoints, logger: Logger) {
        let bearer = token.map(BearerToken.init)
        self.init(host: host, port: port, authorize: { header in bearer?.matches(header) ?? true }, endpoints: endpoints, logger: logger)
    }

    public init(
        host: String, port: Int, authorize: @escaping @Sendable (String?) -> Bool, endpoints: HTTPEndpoints, logger: Logger
    ) {
        self.host = host
        self.port = port
        self.authorize = authorize
        self.endpoints = endpoints
        self.logger = logger
    }

    /// Serves until graceful shutdown; `onListening` gets the address bound ("127.0.0.1:9400").
    public func run(onListening: @escaping @Sendable (String) async -> Void = { _ in }) async throws {
        let router = Router()
        router.add(middleware: Guard())
        let endpoints = self.endpoints
        // HEAD answers as GET would, without the body.
        func route(_ path: RouterPath, _ handler: @escaping @Sendable (Request) async -> Response) {
            router.get(path) { request, _ in await handler(request) }
            router.head(path) { request, _ in
                let response = await handler(request)
                return Response(status: response.status, headers: response.headers)
            }
        }
        let authorize = self.authorize
        route("/metrics") { request in
            // Here, not by path in the guard: the router also sends "/metrics/" here.
            guard authorize(request.headers[.authorization]) else {
                var response = Self.text(.unauthorized, "/metrics needs the bearer token: send `Authorization: Bearer <token>`\n")
                response.headers[.wwwAuthenticate] = "Bearer"
                return response
            }
            let format = ExpositionFormat.negotiate(accept: request.headers[.accept])
            let page = await endpoints.metrics(format)
            return Response(
                status: .ok, headers: [.contentType: format.contentType],
                body: .init(byteBuffer: ByteBuffer(bytes: page)))
        }
        route("/healthz") { _ in Self.text(.ok, "ok\n") }
        route("/readyz") { _ in
            if let problem = await endpoints.readiness() { return Self.text(.serviceUnavailable, problem + "\n") }
            return Self.text(.ok, "ready\n")
        }
        var logger = self.logger
        logger[metadataKey: "component"] = "http"
        let application = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: idleTimeout)),
            configuration: .init(
                address: .hostname(host, port: port), serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(maxConnections)),
            onServerRunning: { channel in
                let address = channel.localAddress
                let text = address.map { address in
                    let ip = address.ipAddress ?? "?"
                    return (ip.contains(":") ? "[\(ip)]" : ip) + ":\(address.port ?? 0)"
                } ?? "\(host):\(port)"
                await onListening(text)
            },
            logger: logger)
        try await application.run()
    }

    static func text(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(
            status: status, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// Refuses what no endpoint takes before a handler runs: bodies, other methods.
    struct Guard: RouterMiddleware {
        func handle(_ request: Request, context: BasicRequestContext, next: (Request, BasicRequestContext) async throws -> Response) async throws -> Response {
            if let length = request.headers[.contentLength].flatMap(Int.init), length > 0 {
                return HTTPServer.text(.contentTooLarge, "these endpoints take no request body\n")
            }
            if request.headers[.transferEncoding] != nil {
                return HTTPServer.text(.contentTooLarge, "these endpoints take no request body\n")
            }
            guard request.method == .get || request.method == .head else {
                var response = HTTPServer.text(.methodNotAllowed, "only GET\n")
                response.headers[.allow] = "GET, HEAD"
                return response
            }
            return try await next(request, context)
        }
    }
}
