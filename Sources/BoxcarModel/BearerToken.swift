import Crypto

/// A bearer token compared in constant time (through SHA-256 digests of both sides, so neither
/// the time taken nor a length tells how much matched).
public struct BearerToken: Sendable {
    private let expected: [UInt8]

    public init(_ token: String) {
        expected = Array(SHA256.hash(data: Array("Bearer \(token)".utf8)))
    }

    public func matches(_ header: String?) -> Bool {
        guard let header else { return false }
        let digest = SHA256.hash(data: Array(header.utf8))
        var difference: UInt8 = 0
        for (a, b) in zip(digest, expected) { difference |= a ^ b }
        return difference == 0
    }
}
