import BoxcarExposition
import BoxcarModel
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

// BoxcarHTTP: `--http`, what monitoring stacks, probes and people reach over HTTP/1.1 (Hummingbird):
//
//   GET /metrics   the exposition page, Prometheus text 0.0.4 or OpenMetrics 1.0 as `Accept` asks
//   GET /healthz   200 while the process runs
//   GET /readyz    200 when it can take work (store writable, socket served), else 503 and why
//
// and where the process has pages (the agent; `WebPages`):
//
//   GET /                                the experiments
//   GET /experiments/ID                  one experiment: charts, events, metadata, files
//   GET /experiments/ID/files/FILE       a stored file's bytes
//   GET /login, POST /login, POST /logout   the token typed once, kept in a cookie (`WebSession`)
//
// Anything else is 404 (unknown path) or 405 (another method). A request with a body is 413, but
// the login form's (at most 4 KiB). A connection idle for `idleTimeout` (15 s) is closed, and at
// most `maxConnections` (64) are held, so a client that connects and says nothing holds no more
// than that.

/// What the endpoints answer with; the process that serves them fills it in.
public struct HTTPEndpoints: Sendable {
    /// The page in the format asked for.
    public var metrics: @Sendable (ExpositionFormat) async -> [UInt8]
    /// nil when ready, else why not (said in the 503's body).
    public var readiness: @Sendable () async -> String?
    /// The pages for people; nil: none (the collector's).
    public var pages: WebPages?

    public init(
        metrics: @escaping @Sendable (ExpositionFormat) async -> [UInt8],
        readiness: @escaping @Sendable () async -> String?,
        pages: WebPages? = nil
    ) {
        self.metrics = metrics
        self.readiness = readiness
        self.pages = pages
    }
}

/// What the agent's pages show; the process fills it in, the server adds the frame around it.
public struct WebPages: Sendable {
    /// A page's content: its title, the HTML inside `<main>`, and whether (after how many
    /// seconds) the browser loads it again.
    public struct Page: Sendable {
        public var title: String
        public var body: String
        public var refresh: Int?

        public init(title: String, body: String, refresh: Int? = nil) {
            self.title = title
            self.body = body
            self.refresh = refresh
        }
    }

    /// A stored file: where its bytes are, and the name a browser saves it as.
    public struct Download: Sendable {
        public var path: String
        public var name: String

        public init(path: String, name: String) {
            self.path = path
            self.name = name
        }
    }

    /// The experiments.
    public var index: @Sendable () async throws -> Page
    /// An experiment's page, with the fields of its form (`key`, `axis`, `since`, `until`); nil
    /// when there is no experiment of that id.
    public var run: @Sendable (_ id: String, _ query: [(name: String, value: String)]) async throws -> Page?
    /// One of an experiment's files; nil when it has no such file, or its bytes are not here.
    public var file: @Sendable (_ experimentID: String, _ fileID: String) async throws -> Download?

    public init(
        index: @escaping @Sendable () async throws -> Page,
        run: @escaping @Sendable (String, [(name: String, value: String)]) async throws -> Page?,
        file: @escaping @Sendable (String, String) async throws -> Download?
    ) {
        self.index = index
        self.run = run
        self.file = file
    }
}

public struct HTTPServer: Sendable {
    public var host: String
    public var port: Int
    /// Whether the `Authorization` header of a request may read /metrics and the pages (the
    /// probes stay open: they say only whether the process runs).
    public var authorize: @Sendable (String?) -> Bool
    /// The cookie of a browser signed in through the login form; nil: no token, nothing to sign in to.
    public var session: WebSession?
    public var endpoints: HTTPEndpoints
    /// A connection that sends nothing for this long is closed (Prometheus reconnects).
    public var idleTimeout: TimeAmount = .seconds(15)
    public var maxConnections = 64
    public var logger: Logger

    /// `token`: the bearer token /metrics and the pages ask for, which also keys the login
    /// cookie; nil: none.
    public init(host: String, port: Int, token: String?, endpoints: HTTPEndpoints, logger: Logger) {
        let bearer = token.map(BearerToken.init)
        self.init(host: host, port: port, authorize: { header in bearer?.matches(header) ?? true }, endpoints: endpoints, logger: logger)
        session = token.map(WebSession.init)
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
        router.add(middleware: Guard(forms: endpoints.pages == nil ? [] : ["/login", "/logout"]))
        let endpoints = self.endpoints
        // HEAD answers as GET would, without the body.
        func route(_ path: RouterPath, _ handler: @escaping @Sendable (Request, BasicRequestContext) async throws -> Response) {
            router.get(path) { request, context in try await handler(request, context) }
            router.head(path) { request, context in
                let response = try await handler(request, context)
                // The length GET's body would have (a download's size), not the empty one's.
                var headers = response.headers
                if let length = response.body.contentLength { headers[.contentLength] = String(length) }
                return Response(status: response.status, headers: headers)
            }
        }
        let access = Access(authorize: authorize, session: session)
        route("/metrics") { request, _ in
            // Here, not by path in the guard: the router also sends "/metrics/" here.
            guard access.reader(of: request) != nil else {
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
        route("/healthz") { _, _ in Self.text(.ok, "ok\n") }
        route("/readyz") { _, _ in
            if let problem = await endpoints.readiness() { return Self.text(.serviceUnavailable, problem + "\n") }
            return Self.text(.ok, "ready\n")
        }
        if let pages = endpoints.pages {
            addPages(pages, access: access, to: router, route: route)
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

    /// Refuses what no endpoint takes before a handler runs: bodies and methods other than GET and
    /// HEAD, but for the forms' POSTs (`forms`: their paths), whose bodies are read up to their limit.
    struct Guard: RouterMiddleware {
        var forms: Set<String>

        func handle(_ request: Request, context: BasicRequestContext, next: (Request, BasicRequestContext) async throws -> Response) async throws -> Response {
            if request.method == .post && forms.contains(request.uri.path) {
                return try await next(request, context)
            }
            if let length = request.headers[.contentLength].flatMap(Int.init), length > 0 {
                return HTTPServer.text(.contentTooLarge, "these endpoints take no request body\n")
            }
            if request.headers[.transferEncoding] != nil {
                return HTTPServer.text(.contentTooLarge, "these endpoints take no request body\n")
            }
            guard request.method == .get || request.method == .head else {
                // /login is a page and its form's target; /logout only the target.
                let allow = request.uri.path == "/logout" && forms.contains("/logout") ? "POST" : forms.contains(request.uri.path) ? "GET, HEAD, POST" : "GET, HEAD"
                var response = HTTPServer.text(.methodNotAllowed, "only \(allow)\n")
                response.headers[.allow] = allow
                return response
            }
            return try await next(request, context)
        }
    }
}
