#if canImport(Glibc)
import Glibc
#endif
import BoxcarModel
import Foundation
import GRPCCore
import Synchronization

/// The collector's `--token-file`: one token per line, named, with what it may do:
///
///     # NAME    ROLE    TOKEN
///     node-17   agent   3f9c…      (may forward, and read)
///     grafana   read    b41e…      (may only read)
///
/// A leaked token is revoked alone by removing its line: the file is read again whenever it
/// changes, without a restart. Like the agent's token file it must not be readable by others.
final class TokenFile: Sendable {
    enum Role: String, Sendable {
        case agent
        case read
    }

    struct Entry: Sendable {
        let name: String
        let role: Role
        let digest: [UInt8]
    }

    let path: String
    private let cache: Mutex<(modified: timespec, entries: [Entry])>

    init(path: String) throws {
        self.path = path
        let (modified, entries) = try Self.load(path)
        cache = Mutex((modified, entries))
    }

    /// The entry whose token `given` is (compared through SHA-256 digests, in constant time per
    /// entry), or nil.
    func entry(forBearer given: String) -> Entry? {
        let entries = current()
        guard let token = BearerToken.credentials(given) else { return nil }
        let digest = BearerToken.digest(token)
        var found: Entry?
        for entry in entries where BearerToken.same(digest, entry.digest) { found = entry }
        return found
    }

    /// The entries, read again if the file changed; a file that became unreadable or malformed
    /// keeps the last good ones (and the reason is in the log of the next start).
    private func current() -> [Entry] {
        var info = stat()
        let modified = stat(path, &info) == 0 ? info.st_mtim : timespec()
        return cache.withLock { cache in
            if modified.tv_sec != cache.modified.tv_sec || modified.tv_nsec != cache.modified.tv_nsec,
                let (newModified, entries) = try? Self.load(path)
            {
                cache = (newModified, entries)
            }
            return cache.entries
        }
    }

    static func load(_ path: String) throws -> (timespec, [Entry]) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw TokenFileError("cannot read the token file \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & (S_IRWXG | S_IRWXO) == 0 else {
            throw TokenFileError("the token file \(path) can be read by other users; chmod 600 it")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TokenFileError("cannot read the token file \(path)")
        }
        var entries: [Entry] = []
        var names = Set<String>()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            guard fields.count == 3, let role = Role(rawValue: String(fields[1])) else {
                throw TokenFileError("\(path) line \(number + 1): expected NAME ROLE TOKEN with ROLE agent or read")
            }
            guard names.insert(String(fields[0])).inserted else {
                throw TokenFileError("\(path) line \(number + 1): the name \(fields[0]) is there twice")
            }
            entries.append(Entry(
                name: String(fields[0]), role: role,
                digest: BearerToken.digest(String(fields[2]))))
        }
        guard !entries.isEmpty else { throw TokenFileError("the token file \(path) names no token") }
        return (info.st_mtim, entries)
    }
}

struct TokenFileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Every call must carry one of the file's tokens; forwarding needs an agent's.
struct TokenInterceptor: ServerInterceptor {
    let tokens: TokenFile

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let entry = request.metadata[stringValues: "authorization"].lazy.compactMap { tokens.entry(forBearer: $0) }.first
        guard let entry else {
            throw RPCError(code: .unauthenticated, message: "the collector needs a token of its token file: send `authorization: Bearer <token>`")
        }
        if context.descriptor.service.fullyQualifiedService == "boxcar.v1.Collector" && entry.role != .agent {
            throw RPCError(code: .permissionDenied, message: "token \(entry.name) may read, not forward")
        }
        return try await next(request, context)
    }
}
