#if canImport(Glibc)
import Glibc
#endif
import BoxcarModel
import BoxcarServer
import BoxcarStorage

/// Whoever can write to the socket's directory can put their own listener in the agent's place:
/// refuse a directory that another user owns or may write to (sticky ones like /tmp excepted).
func checkSocketDirectory(_ directory: String) throws {
    var info = stat()
    guard lstat(directory, &info) == 0 else {
        throw ArtifactError.io("cannot inspect the socket directory \(directory)", errno)
    }
    if (info.st_mode & S_IFMT) == S_IFLNK {
        throw ValidationError("the socket directory \(directory) is a symbolic link; refusing to follow it")
    }
    guard (info.st_mode & S_IFMT) == S_IFDIR else {
        throw ValidationError("the socket directory \(directory) is not a directory")
    }
    if info.st_uid != getuid() && info.st_uid != 0 {
        throw ValidationError(
            "the socket directory \(directory) belongs to \(userName(info.st_uid)), not to this agent's user: whoever owns it"
                + " can listen there in the agent's place. Remove it (as its owner or root) if nobody should have it,"
                + " or give the agent a directory of its own: set XDG_RUNTIME_DIR, or --socket")
    }
    let writableByOthers = info.st_mode & (S_IWGRP | S_IWOTH) != 0
    let sticky = info.st_mode & S_ISVTX != 0
    if writableByOthers && !sticky {
        throw ValidationError("the socket directory \(directory) is writable by other users; make it 0700 or choose another --socket")
    }
}

/// "user alice (uid 1001)", or "uid 1001" when no such user is known.
func userName(_ uid: uid_t) -> String {
    guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "uid \(uid)" }
    return "user \(String(cString: name)) (uid \(uid))"
}

/// Whether --socket-group may change `directory`'s group and mode: only a directory the agent
/// made for its socket, or one of its own that no other user can enter. A shared one (`/tmp`,
/// `/run`, a home) is not the agent's to open to a group.
func mayOpenToGroup(_ directory: String, created: Bool) -> Bool {
    if created { return true }
    var info = stat()
    guard lstat(directory, &info) == 0 else { return false }
    return info.st_uid == getuid() && info.st_mode & (S_IRWXO | S_ISVTX) == 0
}

/// The client's side of `checkSocketDirectory` (the Python SDK's `check_socket` is the same):
/// refuses, before connecting, a socket someone other than the agent may have put there, to
/// whom the command would hand what it sends. Its directory and the socket must belong to root,
/// this user or `BOXCAR_AGENT_USER` (the systemd unit's `boxcar`), and the directory must be
/// writable by no one else (a group only where `BOXCAR_SOCKET_GROUP` names it). What is not
/// there yet passes: there is nothing to connect to.
func checkSocketBeforeConnecting(_ path: String, environment: [String: String]) throws {
    var owners: Set<uid_t> = [0, getuid()]
    if let user = environment["BOXCAR_AGENT_USER"], !user.isEmpty {
        guard let entry = getpwnam(user) else {
            throw CLIError("BOXCAR_AGENT_USER names \(user), and this machine has no such user")
        }
        owners.insert(entry.pointee.pw_uid)
    }
    let group = environment["BOXCAR_SOCKET_GROUP"].flatMap { getgrnam($0) }.map { $0.pointee.gr_gid }
    let directory = parent(of: path)
    var info = stat()
    for place in [directory, path] {
        guard stat(place, &info) == 0 else { return }
        guard owners.contains(info.st_uid) else {
            throw CLIError(
                "refusing the agent socket \(path): \(place) belongs to \(userName(info.st_uid)), who could be listening in"
                    + " the agent's place. If that user runs the agent, set BOXCAR_AGENT_USER to it; else remove the"
                    + " directory (as its owner or root) or point --socket at the agent's own socket.")
        }
    }
    guard stat(directory, &info) == 0 else { return }
    let groupMayWrite = info.st_mode & S_IWGRP != 0 && info.st_gid != group
    if info.st_mode & S_IWOTH != 0 || groupMayWrite {
        throw CLIError(
            "refusing the agent socket \(path): other users may write to its directory \(directory) (mode"
                + " \(String(info.st_mode & 0o7777, radix: 8))) and put their own listener there; give the agent a"
                + " directory of its own (its default, $XDG_RUNTIME_DIR/boxcar, is one)")
    }
}

/// The device and inode of the socket this agent bound, so that it removes its own socket on exit
/// and never one a newer agent has put there since.
func socketIdentity(_ path: String) -> (dev_t, ino_t)? {
    var info = stat()
    return lstat(path, &info) == 0 ? (info.st_dev, info.st_ino) : nil
}

func parent(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// Whether something accepts connections on the unix socket at `path`.
func socketAnswers(_ path: String) -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (index, byte) in bytes.prefix(raw.count - 1).enumerated() { raw[index] = byte }
    }
    let rc = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    return rc == 0
}
