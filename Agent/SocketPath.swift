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
        throw ValidationError("the socket directory \(directory) belongs to another user (uid \(info.st_uid))")
    }
    let writableByOthers = info.st_mode & (S_IWGRP | S_IWOTH) != 0
    let sticky = info.st_mode & S_ISVTX != 0
    if writableByOthers && !sticky {
        throw ValidationError("the socket directory \(directory) is writable by other users; make it 0700 or choose another --socket")
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
