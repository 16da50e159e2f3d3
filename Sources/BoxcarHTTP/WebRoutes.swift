#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdCore
import NIOCore

/// Who may read: a script with the bearer header, a browser with the session's cookie, anyone
/// where the agent has no token (loopback, a person's own machine).
struct Access: Sendable {
    /// A script or an open agent's reader (the header), or a browser signed in (the cookie: the
    /// page offers to sign out).
    enum Reader { case header, browser }

    var authorize: @Sendable (String?) -> Bool
    var session: WebSession?

    func reader(of request: Request) -> Reader? {
        guard let session else { return authorize(request.headers[.authorization]) ? .header : nil }
        let cookies = WebSession.cookies(in: request.headers[values: .cookie])
        if !cookies.isEmpty && session.matches(cookies: cookies, now: Int64(time(nil))) { return .browser }
        return authorize(request.headers[.authorization]) ? .header : nil
    }

    /// Whether a page may be answered to the name the request was sent to. Without a token the
    /// agent listens on loopback only, and its pages answer to loopback names only: a site whose
    /// name an attacker points at 127.0.0.1 (DNS rebinding) would otherwise read them through a
    /// person's browser. With a token, the cookie (set for the name signed in at) guards them.
    func answers(to request: Request) -> Bool {
        guard session == nil else { return true }
        guard let authority = request.head.authority else { return false }
        return Self.isLoopback(authority: authority)
    }

    /// `localhost`, `127.x.y.z`, `[::1]`, with or without a port.
    static func isLoopback(authority: String) -> Bool {
        var host = Substring(authority.lowercased())
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            host = host[host.index(after: host.startIndex)..<close]
            return host == "::1"
        }
        if let colon = host.lastIndex(of: ":") { host = host[..<colon] }
        if host == "localhost" || host.hasSuffix(".localhost") { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }
}

extension HTTPServer {
    /// The most a login form's body may hold.
    static let maxFormBytes = 4096

    /// `/`, an experiment's page, its files, and signing in and out.
    func addPages(
        _ pages: WebPages, access: Access, to router: Router<BasicRequestContext>,
        route: (RouterPath, @escaping @Sendable (Request, BasicRequestContext) async throws -> Response) -> Void
    ) {
        let logger = self.logger
        /// A page for a reader, or the way to the login form (a script without the header: 401).
        @Sendable func page(_ request: Request, _ make: @Sendable () async throws -> WebPages.Page?) async -> Response {
            guard access.answers(to: request) else { return Self.notLoopback }
            guard let reader = access.reader(of: request) else { return Self.signInFirst(request) }
            do {
                guard let content = try await make() else {
                    return Self.html(.notFound, HTMLDocument.page(title: "Not found", body: "<h1>Not found</h1>\n<p>There is nothing of that id here. <a href=\"/\">The experiments</a></p>", signedIn: reader == .browser))
                }
                return Self.html(.ok, HTMLDocument.page(title: content.title, body: content.body, refresh: content.refresh, signedIn: reader == .browser))
            } catch {
                logger.warning("a page failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
                let body = "<h1>This page failed</h1>\n<p class=\"problem\">\(HTMLDocument.escape("\(error)"))</p>"
                return Self.html(.internalServerError, HTMLDocument.page(title: "Failed", body: body, signedIn: reader == .browser))
            }
        }
        route("/") { request, _ in await page(request) { try await pages.index() } }
        route("/experiments/:id") { request, context in
            let id = Self.parameter("id", of: context)
            let query = HTMLDocument.formFields(request.uri.query ?? "")
            return await page(request) { try await pages.run(id, query) }
        }
        route("/experiments/:id/files/:file") { request, context in
            guard access.answers(to: request) else { return Self.notLoopback }
            guard access.reader(of: request) != nil else { return Self.signInFirst(request) }
            guard let download = try await pages.file(Self.parameter("id", of: context), Self.parameter("file", of: context)) else {
                return Self.text(.notFound, "no such file of this experiment, or its bytes are not kept here\n")
            }
            let body = try await FileIO().loadFile(path: download.path, context: context)
            var response = Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: body)
            response.headers[.contentDisposition] = Self.attachment(download.name)
            response.headers[.xContentTypeOptions] = "nosniff"
            response.headers[.cacheControl] = "no-store"
            return response
        }
        guard let session else {
            // No token: nothing to sign in to.
            route("/login") { _, _ in Response(status: .seeOther, headers: [.location: "/"]) }
            return
        }
        route("/login") { request, _ in
            let next = WebSession.safeNext(HTMLDocument.formFields(request.uri.query ?? "").last { $0.name == "next" }?.value)
            return Self.html(.ok, WebSession.loginPage(next: next, problem: nil))
        }
        router.post("/login") { request, _ in
            var request = request
            guard Self.sameOrigin(request) else { return Self.text(.forbidden, "a form of another site's page\n") }
            let body = try await request.collectBody(upTo: Self.maxFormBytes)
            let fields = HTMLDocument.formFields(String(buffer: body))
            let next = WebSession.safeNext(fields.last { $0.name == "next" }?.value)
            guard let token = fields.last(where: { $0.name == "token" })?.value, session.accepts(token: token) else {
                logger.notice("a sign-in with a wrong token")
                // 403: the form again (a 401 would ask for a WWW-Authenticate scheme a form has not).
                return Self.html(.forbidden, WebSession.loginPage(next: next, problem: "That is not this agent's token."))
            }
            var response = Response(status: .seeOther, headers: [.location: next])
            response.headers[.setCookie] = session.signIn(now: Int64(time(nil)))
            return response
        }
        router.post("/logout") { request, _ in
            guard Self.sameOrigin(request) else { return Self.text(.forbidden, "a form of another site's page\n") }
            var response = Response(status: .seeOther, headers: [.location: "/login"])
            response.headers[.setCookie] = WebSession.signOut
            return response
        }
    }

    static let notLoopback = text(
        .misdirectedRequest,
        "without a token the agent's pages answer to loopback names only (localhost, 127.0.0.1, [::1]); give the agent --token-file to reach them by another name\n")

    /// A route's parameter, percent-decoded (the router leaves `%2F` as it is).
    static func parameter(_ name: String, of context: BasicRequestContext) -> String {
        HTMLDocument.percentDecode(context.parameters.get(name) ?? "")
    }

    /// A browser is sent to the login form (and back here after it); a script is told what to send.
    static func signInFirst(_ request: Request) -> Response {
        let accepts = request.headers[.accept] ?? ""
        guard accepts.contains("text/html") else {
            var response = text(.unauthorized, "send `Authorization: Bearer <token>`, or sign in at /login\n")
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        let path = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        return Response(status: .seeOther, headers: [.location: "/login?next=" + HTMLDocument.percentEncode(path)])
    }

    /// Whether a form was posted from this server's own page: a browser says where a POST comes
    /// from (`Sec-Fetch-Site`; an older one only `Origin`, compared with the name it was sent to,
    /// which a proxy in front may have changed); one that says nothing is a script, whose token is
    /// its own.
    static func sameOrigin(_ request: Request) -> Bool {
        if let site = request.headers[.init("Sec-Fetch-Site")!] { return site == "same-origin" || site == "none" }
        guard let origin = request.headers[.origin] else { return true }
        guard let host = request.head.authority else { return false }
        return origin == "http://" + host || origin == "https://" + host
    }

    static func html(_ status: HTTPResponse.Status, _ document: String) -> Response {
        Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8",
                // Nothing but this document's own style and inline pictures; no frame around it.
                .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                .xContentTypeOptions: "nosniff",
                .init("Referrer-Policy")!: "no-referrer",
                // A run's data behind a token: not kept by caches between.
                .cacheControl: "no-store",
            ],
            body: .init(byteBuffer: ByteBuffer(string: document)))
    }

    /// `Content-Disposition` for saving a file under `name`: an ASCII fallback and the UTF-8 name
    /// (RFC 6266), without a path or a quote.
    static func attachment(_ name: String) -> String {
        let base = name.split(separator: "/").last.map(String.init) ?? "file"
        let ascii = String(base.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0 != "\"" && $0 != "\\" && $0.value != 0x7F ? Character($0) : "_" })
        return "attachment; filename=\"\(ascii)\"; filename*=UTF-8''\(HTMLDocument.percentEncode(base))"
    }
}

