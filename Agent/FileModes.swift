#if canImport(Glibc)
import Glibc
#endif
import Logging

/// A run's data is its user's alone: the agent and the collector create what they write (the data
/// directory, the database with its WAL and SHM, artifacts) without any bits for group or others.
/// The socket is the one exception, opened to its group on purpose (Agent.prepareSocketPath).
func keepCreatedFilesPrivate() {
    umask(0o077)
}

/// Warns about data the agent finds open to other users of the machine, left by an earlier
/// version or made by hand: it does not change a mode it did not set, but says how.
func warnIfOthersCanRead(_ paths: [String], logger: Logger) {
    for path in paths {
        var info = stat()
        guard stat(path, &info) == 0 else { continue }
        let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
        // A shared sticky directory (/tmp) is open by design; what matters is the files in it.
        if isDirectory && info.st_mode & S_ISVTX != 0 { continue }
        let open = info.st_mode & (S_IRWXG | S_IRWXO)
        guard open != 0 else { continue }
        logger.warning(
            "\(path) is open to other users of this machine (mode \(String(info.st_mode & 0o7777, radix: 8))): they can read every run in it; chmod go-rwx \(path)")
    }
}
