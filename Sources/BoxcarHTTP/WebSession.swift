import BoxcarModel
import Crypto

/// A person's browser, once they have typed the token into the login form: it is kept signed in
/// by an `HttpOnly`, `SameSite=Strict` cookie, so that no script can read it and no other site's
/// page can send it. The cookie holds not the token but the time it was issued and
/// HMAC-SHA256(token, that time): it does not reveal the token, it holds across the agent's
/// restarts, the agent refuses it after `maxAge` whatever the browser keeps, and a new token ends
/// every session. Scripts keep sending `Authorization: Bearer <token>`.
public struct WebSession: Sendable {
    public static let cookieName = "boxcar_session"
    /// How long a browser stays signed in, in seconds.
    public static let maxAge: Int64 = 30 * 86_400

    private let token: BearerToken
    /// The MAC's key: the token's bytes.
    private let key: [UInt8]

    public init(token: String) {
        self.token = BearerToken(token)
        key = Array(token.utf8)
    }

    /// Whether the form's token is the agent's.
    public func accepts(token given: String) -> Bool { token.matches(token: given) }

    /// The cookie's value for a sign-in at `issued` (seconds since the epoch): `<issued>.<MAC>`.
    func value(issued: Int64) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("boxcar web session 1 \(issued)".utf8), using: SymmetricKey(data: key))
        return "\(issued)." + mac.hexString
    }

    /// Whether any of the request's cookies of this name (another service on the same host may
    /// have set one too) is a sign-in of this token, issued within `maxAge` before `now`.
    public func matches(cookies: [String], now: Int64) -> Bool {
        cookies.contains { cookie in
            // No subtraction of what the browser sent: a forged time must not trap.
            guard let dot = cookie.firstIndex(of: "."), let issued = Int64(cookie[..<dot]),
                issued <= now + 300, issued >= now - Self.maxAge  // a clock a little behind the browser's
            else { return false }
            return BearerToken.same(BearerToken.digest(cookie), BearerToken.digest(value(issued: issued)))
        }
    }

    /// The values of the cookies named `boxcar_session` in a request's `Cookie` headers.
    static func cookies(in headers: [String]) -> [String] {
        headers.flatMap { $0.split(separator: ";") }.compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.drop { $0 == " " || $0 == "\t" } }
            guard parts.count == 2, parts[0] == cookieName else { return nil }
            return String(parts[1].reversed().drop { $0 == " " || $0 == "\t" }.reversed())
        }
    }

    /// The `Set-Cookie` value that signs a browser in. Not `Secure`: the agent speaks plain HTTP
    /// (on loopback, through `ssh -L`); a browser drops a Secure cookie set over it.
    func signIn(now: Int64) -> String {
        "\(Self.cookieName)=\(value(issued: now)); Path=/; Max-Age=\(Self.maxAge); HttpOnly; SameSite=Strict"
    }

    /// The `Set-Cookie` value that signs it out.
    static let signOut = "\(cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"

    /// The login form; `problem` says why the last try failed.
    static func loginPage(next: String, problem: String?) -> String {
        let message = problem.map { "<p class=\"problem\">\(HTMLDocument.escape($0))</p>\n" } ?? ""
        return HTMLDocument.page(title: "Sign in", body: """
            <form class="login" method="post" action="/login">
            <h1>Sign in</h1>
            <p class="muted">This agent asks for its token (the contents of its <code>--token-file</code>). \
            The browser keeps you signed in for 30 days.</p>
            \(message)<label for="token">Token</label>
            <input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
            <input type="hidden" name="next" value="\(HTMLDocument.escape(next))">
            <button type="submit">Sign in</button>
            <p class="muted">Signed in already? A link from another site's page comes without the
            cookie (SameSite=Strict): <a href="\(HTMLDocument.escape(next))">go on to the page</a>.</p>
            </form>
            """)
    }

    /// Where to go after signing in: a path of this server's only (not `//elsewhere`, not a URL).
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.contains("\\"),
            !next.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
        else { return "/" }
        return next
    }
}
