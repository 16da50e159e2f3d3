#if canImport(Glibc)
import Glibc
#endif
import BoxcarModel
import Crypto
import FoundationEssentials

/// Uploaded bytes, stored by content: `blobs/<first two hex digits>/<sha256>` under the artifacts
/// directory. The path a client sends is only recorded, never used to place bytes, so no upload
/// can write outside this directory. Uploads land in `incoming/` first and are renamed into place
/// only once complete and verified. Its calls block on the disk: the services make them on NIO's
/// pool of blocking threads, never on the Swift concurrency pool, whose few threads (two on a
/// 2-core machine) must stay free for every other call.
public struct ArtifactStore: Sendable {
    public let root: String

    public init(root: String) throws {
        self.root = root
        try makeDirectories(root + "/blobs")
        try makeDirectories(root + "/incoming")
    }

    /// Whether this directory is the database's `owner`'s alone, so that what no record of that
    /// database names may be swept. `owner` records the id of the database that claimed it; one
    /// that names another (--artifacts given to two agents), or that cannot be read, is not ours.
    /// An unclaimed directory is claimed only when every blob in it is one `referenced` names: one
    /// from before owners were recorded may hold another database's blobs, and is never swept.
    public func isOwned(by owner: Int64, referenced: Set<String>) throws -> Bool {
        let path = root + "/owner"
        var info = stat()
        if stat(path, &info) == 0 && info.st_size > 0 {
            guard let recorded = try? String(contentsOfFile: path, encoding: .utf8),
                let line = recorded.split(whereSeparator: \.isNewline).first
            else { return false }
            return line == String(owner)
        }
        for prefix in entries(of: root + "/blobs") {
            if entries(of: "\(root)/blobs/\(prefix)").contains(where: { !referenced.contains($0) }) { return false }
        }
        unlink(path)  // an empty one, from a crash between its creation and its write
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ArtifactError.io("cannot create \(path)", errno) }
        defer { close(fd) }
        let text = Array("\(owner)\n".utf8)
        guard Glibc.write(fd, text, text.count) == text.count, fsync(fd) == 0 else {
            throw ArtifactError.io("cannot write \(path)", errno)
        }
        return true
    }

    /// Removes what an agent killed mid-way left behind, and returns how much: uploads it never
    /// finished (files in `incoming/`) and blobs no record names (their record failed after the
    /// bytes were in place, or was deleted). At start, before any upload can be in flight, that is
    /// everything; while the agent serves, only what was last written before `modifiedBefore`
    /// (seconds since the epoch), since a blob just renamed into place has no record yet and an
    /// upload in progress is still writing.
    public func removeLeftovers(keeping referenced: Set<String>, modifiedBefore: Int? = nil) -> (partialUploads: Int, orphans: Int) {
        func removable(_ path: String) -> Bool {
            guard let modifiedBefore else { return true }
            var info = stat()
            return stat(path, &info) == 0 && info.st_mtim.tv_sec < modifiedBefore
        }
        var partialUploads = 0
        for name in entries(of: root + "/incoming") {
            let path = "\(root)/incoming/\(name)"
            if removable(path) && unlink(path) == 0 { partialUploads += 1 }
        }
        var orphans = 0
        for prefix in entries(of: root + "/blobs") {
            for name in entries(of: "\(root)/blobs/\(prefix)") where !referenced.contains(name) {
                let path = "\(root)/blobs/\(prefix)/\(name)"
                if removable(path) && unlink(path) == 0 { orphans += 1 }
            }
        }
        return (partialUploads, orphans)
    }

    /// The names in a directory, but . and ..; none when it cannot be read.
    private func entries(of directory: String) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func blobPath(_ sha256: String) -> String {
        "\(root)/blobs/\(sha256.prefix(2))/\(sha256)"
    }

    public func beginUpload(maxBytes: Int64) throws -> Upload {
        let path = "\(root)/incoming/\(Identifiers.randomFileID())"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ArtifactError.io("cannot create \(path)", errno) }
        return Upload(store: self, temporaryPath: path, fd: fd, maxBytes: maxBytes)
    }

    /// Opens a stored blob for reading; nil when the bytes are not there.
    /// The blob's reader; nil when it is not there. Another failure (no descriptor left, say)
    /// throws.
    public func openBlob(_ sha256: String) throws -> BlobReader? {
        let path = blobPath(sha256)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { return BlobReader(fd: fd) }
        let code = errno
        if code == ENOENT { return nil }
        throw ArtifactError.io("cannot open \(path)", code)
    }

    public final class BlobReader: @unchecked Sendable {
        private let fd: Int32

        init(fd: Int32) { self.fd = fd }

        deinit { close(fd) }

        /// Up to `maxBytes` more bytes; nil at the end.
        public func next(maxBytes: Int) throws -> Data? {
            var data = Data(count: maxBytes)
            while true {
                let count = data.withUnsafeMutableBytes { read(fd, $0.baseAddress, maxBytes) }
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { throw ArtifactError.io("cannot read a blob", errno) }
                if count == 0 { return nil }
                data.count = count
                return data
            }
        }
    }

    /// An upload in progress: bytes go to a temporary file while both digests are computed.
    public final class Upload: @unchecked Sendable {
        let store: ArtifactStore
        let temporaryPath: String
        private var fd: Int32
        private let maxBytes: Int64
        private var md5 = Insecure.MD5()
        private var sha256 = SHA256()
        public private(set) var size: Int64 = 0

        init(store: ArtifactStore, temporaryPath: String, fd: Int32, maxBytes: Int64) {
            self.store = store
            self.temporaryPath = temporaryPath
            self.fd = fd
            self.maxBytes = maxBytes
        }

        deinit { abort() }

        public func write(_ chunk: Data) throws {
            size += Int64(chunk.count)
            guard size <= maxBytes else {
                throw ArtifactError.tooLarge(limit: maxBytes)
            }
            md5.update(data: chunk)
            sha256.update(data: chunk)
            try chunk.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let written = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        throw ArtifactError.io("cannot write \(temporaryPath)", errno)
                    }
                    offset += written
                }
            }
        }

        /// Digests of everything written.
        public struct Digests: Sendable {
            public var md5: String
            public var sha256: String
        }

        public func digests() -> Digests {
            Digests(md5: md5.finalize().hexString, sha256: sha256.finalize().hexString)
        }

        /// Makes the bytes durable and moves them to their content address.
        public func commit(sha256 digest: String) throws {
            guard fsync(fd) == 0 else { throw ArtifactError.io("cannot sync \(temporaryPath)", errno) }
            close(fd)
            fd = -1
            let destination = store.blobPath(digest)
            try makeDirectories(String(destination.prefix(upTo: destination.lastIndex(of: "/")!)))
            guard rename(temporaryPath, destination) == 0 else {
                throw ArtifactError.io("cannot move the upload to \(destination)", errno)
            }
            // The new name must reach the disk too, or a power loss could lose an acknowledged file.
            try syncDirectory(String(destination.prefix(upTo: destination.lastIndex(of: "/")!)))
            try syncDirectory(store.root + "/blobs")
        }

        /// Drops the temporary file; nothing of the upload stays behind.
        public func abort() {
            if fd >= 0 {
                close(fd)
                fd = -1
            }
            unlink(temporaryPath)
        }
    }
}

public enum ArtifactError: Error, CustomStringConvertible {
    case tooLarge(limit: Int64)
    case io(String, Int32)

    public var description: String {
        switch self {
        case .tooLarge(let limit): return "the upload is larger than the limit of \(limit) bytes"
        case .io(let what, let code): return "\(what): \(String(cString: strerror(code)))"
        }
    }

    /// The disk is full, or the file size limit was hit.
    public var isFull: Bool {
        if case .io(_, let code) = self { return code == ENOSPC || code == EDQUOT }
        return false
    }

    /// The process (EMFILE) or the system (ENFILE) has no file descriptor left.
    public var isOutOfDescriptors: Bool {
        if case .io(_, let code) = self { return code == EMFILE || code == ENFILE }
        return false
    }
}

/// mkdir -p.
public func makeDirectories(_ path: String) throws {
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        current += "/" + component
        if mkdir(current, 0o755) != 0 && errno != EEXIST {
            throw ArtifactError.io("cannot create directory \(current)", errno)
        }
    }
}

func syncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw ArtifactError.io("cannot open directory \(path)", errno) }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw ArtifactError.io("cannot sync directory \(path)", errno) }
}
