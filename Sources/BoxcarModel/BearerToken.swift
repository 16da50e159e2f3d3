import Crypto

/// A bearer token compared in constant time (through SHA-256 digests of both sides, so neither
/// the time taken nor a length tells how much matched).
public struct BearerToken: Sendable {
    private let expected: [UInt8]

    public init(_ token: String) {
        expected = Self.digest(token)
    }

    public func matches(_ header: String?) -> Bool {
        guard let header, let given = Self.credentials(header) else { return false }
        return matches(token: given)
    }

    /// Whether `token` itself (not a header: what a person typed into the page's form) is this one.
    public func matches(token: String) -> Bool {
        Self.same(Self.digest(token), expected)
    }

    /// The token of an `Authorization` value, `Bearer <token>`: the scheme in any case and one or
    /// more spaces after it (RFC 9110, 11.1 and 11.4); nil for another scheme.
    public static func credentials(_ header: String) -> String? {
        let bytes = Array(header.utf8)
        let scheme = Array("bearer".utf8)
        guard bytes.count > scheme.count + 1,
            zip(bytes, scheme).allSatisfy({ $0 | 0x20 == $1 }),
            bytes[scheme.count] == UInt8(ascii: " ")
        else { return nil }
        let token = bytes[(scheme.count + 1)...].drop(while: { $0 == UInt8(ascii: " ") })
        return token.isEmpty ? nil : String(decoding: token, as: UTF8.self)
    }

    public static func digest(_ token: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(token.utf8)))
    }

    /// Whether two digests are equal, looking at every byte whatever differs.
    public static func same(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0 && a.count == b.count
    }
}
