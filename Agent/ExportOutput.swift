#if canImport(Glibc)
import Glibc
#endif

/// Where `boxcar export` writes, a buffer at a time: standard output, or a file that appears whole
/// or not at all. The file is written beside its target under a temporary name, synced and renamed
/// over it, so a full disk or a crash leaves the old file (or none) instead of a truncated one.
final class ExportOutput {
    private let fd: Int32
    private let target: String?
    private let temporary: String?
    private var buffer: [UInt8] = []
    private var finished = false
    private static let flushBytes = 256 << 10

    /// Standard output when `path` is nil.
    init(path: String?) throws {
        guard let path else {
            (fd, target, temporary) = (STDOUT_FILENO, nil, nil)
            return
        }
        let slash = path.lastIndex(of: "/")
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let directory = slash.map { String(path[..<$0]) + "/" } ?? ""
        let temporary = "\(directory).\(name).\(getpid()).partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Self.failure("cannot create \(temporary) beside \(path)", errno) }
        var existing = stat()
        if stat(path, &existing) == 0 { fchmod(fd, existing.st_mode & 0o7777) }  // replaced, its mode kept
        (self.fd, self.target, self.temporary) = (fd, path, temporary)
    }

    deinit {
        // Not finished: an error on the way. The target keeps what it held.
        if let temporary, !finished {
            close(fd)
            unlink(temporary)
        }
    }

    // Rows are appended to the buffer piece by piece; the writer flushes once a row is whole.

    func write(text: String) {
        buffer.append(contentsOf: text.utf8)
    }

    func write(bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
    }

    func flushIfFull() throws {
        if buffer.count >= Self.flushBytes { try flush() }
    }

    /// Writes what is buffered; for a file, syncs it and puts it in place of the target.
    func finish() throws {
        try flush()
        guard let target, let temporary else { return }
        guard fsync(fd) == 0 else { throw failure(errno) }
        finished = true  // closed below whatever happens: deinit must not close it again
        guard close(fd) == 0 else {
            let code = errno
            unlink(temporary)
            throw failure(code)
        }
        guard rename(temporary, target) == 0 else {
            let code = errno
            unlink(temporary)
            throw failure(code)
        }
    }

    private func flush() throws {
        var written = 0
        while written < buffer.count {
            let count = buffer[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw failure(errno) }
            written += count
        }
        buffer.removeAll(keepingCapacity: true)
    }

    private func failure(_ code: Int32) -> CLIError {
        guard let target else { return Self.failure("cannot write the export to standard output", code) }
        return Self.failure("cannot write \(target)", code, kept: target)
    }

    private static func failure(_ what: String, _ code: Int32, kept: String? = nil) -> CLIError {
        let reason = String(cString: strerror(code))
        return CLIError("\(what): \(reason)" + (kept.map { "; \($0) is as it was before the export" } ?? ""))
    }
}
