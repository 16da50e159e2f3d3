#if canImport(Glibc)
import Glibc
#endif

/// A whole small file (under /proc or /sys) as bytes, or an error naming it.
func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SensorError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16384)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { throw SensorError("cannot read \(path): \(String(cString: strerror(errno)))") }
        if count == 0 { return out }
        out.append(contentsOf: buffer[0..<count])
    }
}

/// Files read every tick, kept open and read again from offset 0 with pread: /proc and /sys
/// files give fresh contents on each read, and keeping them open saves an open and a close per
/// file per tick (opening /proc files was a quarter of a tick's cost). A file that can no longer
/// be read (its process ended) is closed and forgotten. Files are found by a key: their path, or
/// something cheaper to hash where there are many (the process tree's PID and file).
final class OpenFiles<Key: Hashable> {
    /// Each open file's descriptor and the `prune` round it was last used in.
    private var descriptors: [Key: (fd: Int32, round: Int)] = [:]
    private var round = 0
    private var buffer = [UInt8](repeating: 0, count: 65536)
    /// Whether the files are ones the kernel writes out whole on the first read (one record:
    /// /proc/PID/stat, /proc/meminfo, sysfs attributes), so that a read which leaves room in the
    /// buffer is the whole file. Reading again to find the end would have the kernel write the
    /// file out a second time, only to answer 0: for /proc/PID/stat that was a third of a tick.
    /// Not so for files of many records (/proc/diskstats, /proc/net/dev, mountinfo), which come
    /// a page at a time.
    private let wholeInOneRead: Bool

    init(wholeInOneRead: Bool = false) {
        self.wholeInOneRead = wholeInOneRead
    }

    deinit {
        for entry in descriptors.values { close(entry.fd) }
    }

    /// The file's contents; `path` is only made when the file is not open yet.
    func read(_ key: Key, path: () -> String) throws -> [UInt8] {
        if let index = descriptors.index(forKey: key) {
            descriptors.values[index].round = round
            if let bytes = readAll(descriptors.values[index].fd) { return bytes }
            // Gone stale (a re-plugged device, a recreated cgroup): the path may work again.
            forget(key)
        }
        let fd = try descriptor(key, path: path)
        guard let bytes = readAll(fd) else {
            let reason = String(cString: strerror(errno))
            forget(key)
            throw SensorError("cannot read \(path()): \(reason)")
        }
        return bytes
    }

    /// The file's open descriptor, opened with `flags` if it is not open yet; for what is not
    /// read but asked with fstat (a directory's size).
    func descriptor(_ key: Key, flags: Int32 = O_RDONLY, path: () -> String) throws -> Int32 {
        if let index = descriptors.index(forKey: key) {
            descriptors.values[index].round = round
            return descriptors.values[index].fd
        }
        let path = path()
        let fd = open(path, flags | O_CLOEXEC)
        guard fd >= 0 else { throw SensorError("cannot open \(path): \(String(cString: strerror(errno)))") }
        descriptors[key] = (fd, round)
        return fd
    }

    /// Closes a file that can no longer be read (its process ended).
    func forget(_ key: Key) {
        if let entry = descriptors.removeValue(forKey: key) { close(entry.fd) }
    }

    /// Closes the files not used in the last `rounds` calls (processes that left the tree; a
    /// file read every few rounds stays open between).
    func prune(unusedFor rounds: Int = 1) {
        for (key, entry) in descriptors where round - entry.round >= rounds {
            close(entry.fd)
            descriptors[key] = nil
        }
        round += 1
    }

    private func readAll(_ fd: Int32) -> [UInt8]? {
        var total = 0
        while true {
            if total == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }
            let count = buffer.withUnsafeMutableBytes { raw in
                pread(fd, raw.baseAddress! + total, raw.count - total, off_t(total))
            }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            total += count
            if count == 0 || (wholeInOneRead && total < buffer.count) { return Array(buffer[0..<total]) }
        }
    }
}

extension OpenFiles where Key == String {
    func read(_ path: String) throws -> [UInt8] {
        try read(path, path: { path })
    }

    /// A sysfs file's one value, without the trailing newline; nil when it cannot be read.
    func value(_ path: String) -> ArraySlice<UInt8>? {
        guard var value = (try? read(path))?[...] else { return nil }
        while value.last == UInt8(ascii: "\n") { value = value.dropLast() }
        return value
    }

    func text(_ path: String) -> String? { value(path)?.string }

    /// nil when absent or not a number.
    func number(_ path: String) -> Double? { value(path)?.number }

    /// nil when absent or not an unsigned integer.
    func integer(_ path: String) -> UInt64? { value(path)?.integer }
}

func exists(_ path: String) -> Bool {
    access(path, F_OK) == 0
}

/// The names in a directory, "." and ".." aside; empty when it cannot be read.
func directoryEntries(_ path: String) -> [String] {
    guard let directory = opendir(path) else { return [] }
    defer { closedir(directory) }
    var out: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        if name != "." && name != ".." { out.append(name) }
    }
    return out
}

/// The PIDs listed in a /proc directory (its all-digit names), parsed from the directory
/// entries without making a String for each: the process tree lists them every tick.
func processIDs(_ procRoot: String) -> [Int32] {
    guard let directory = opendir(procRoot) else { return [] }
    defer { closedir(directory) }
    var out: [Int32] = []
    while let entry = readdir(directory) {
        let pid = withUnsafeBytes(of: entry.pointee.d_name) { name -> Int32? in
            var value: Int32 = 0
            for byte in name {
                if byte == 0 { break }
                guard byte >= 48 && byte <= 57, value < Int32.max / 10 else { return nil }
                value = value * 10 + Int32(byte - 48)
            }
            return value > 0 ? value : nil
        }
        if let pid { out.append(pid) }
    }
    return out
}
