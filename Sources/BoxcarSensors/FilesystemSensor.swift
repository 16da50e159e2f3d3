#if canImport(Glibc)
import Glibc
#endif
import BoxcarModel

/// Mounted filesystems (`/proc/self/mountinfo`, then statvfs on each mount point): bytes used,
/// free to users and reserved for root, which sum to the limit; inodes used and in all. Real
/// filesystems only, network and parallel ones included (nfs, lustre, ceph, …); pseudo ones
/// (proc, sysfs, cgroup, tmpfs, …) are skipped, but for `/dev/shm`: PyTorch's data-loader
/// workers hand their batches over through it, and die when it fills (a container's is 64 MB
/// unless said otherwise). A filesystem mounted more than once (bind mounts: a pod's /etc/hosts,
/// the same volume twice) is counted once, at its first mount point; one hidden under another
/// mounted on top of it, not at all.
public final class FilesystemSensor: Sensor {
    public let name = "filesystem"
    let files = OpenFiles<String>()
    /// statvfs on a network filesystem can take long: every 10th tick.
    public let cadence = 10
    let procRoot: String
    let statfs: (String) -> Usage?
    /// statvfs on a network filesystem whose server is gone blocks (a hard NFS mount: until it
    /// comes back): each call gets `statfsDeadline`, and a mount whose call has not returned is
    /// left out, without a second call, until it does. The other mounts go on.
    let statfsGuard = HangGuard<String>()
    let statfsDeadline: Duration

    public struct Usage: Sendable, Equatable {
        public var totalBytes, freeBytes, availableBytes: Double
        public var totalInodes, freeInodes: Double

        public init(totalBytes: Double, freeBytes: Double, availableBytes: Double, totalInodes: Double, freeInodes: Double) {
            self.totalBytes = totalBytes
            self.freeBytes = freeBytes
            self.availableBytes = availableBytes
            self.totalInodes = totalInodes
            self.freeInodes = freeInodes
        }
    }

    /// `statfs` answers for a mount point; tests give fixed numbers instead of statvfs.
    public init(
        procRoot: String = "/proc", statfs: @escaping (String) -> Usage? = FilesystemSensor.statvfsUsage,
        statfsDeadline: Duration = .seconds(1)
    ) {
        self.procRoot = procRoot
        self.statfs = statfs
        self.statfsDeadline = statfsDeadline
    }

    /// The mount points whose statvfs has not returned.
    public var hungMounts: [String] { statfsGuard.hung.keys.sorted() }

    static let pseudo: Set<String> = [
        "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "pstore", "bpf",
        "tracefs", "debugfs", "securityfs", "configfs", "fusectl", "mqueue", "hugetlbfs",
        "autofs", "binfmt_misc", "rpc_pipefs", "nsfs", "ramfs", "efivarfs", "squashfs", "overlay",
        "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal", "selinuxfs",
    ]

    struct Mount: Equatable {
        var mountPoint: String
        var type: String
        var source: String
        /// major:minor: the same device mounted twice has the same one.
        var device: String
        /// "ro" where the mount or its filesystem is read-only, else "rw".
        var mode: String
    }

    /// mountinfo lines: "36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw,errors=continue";
    /// the fields after " - " are the type, the source and the filesystem's options. Mount points
    /// escape spaces as \040.
    static func parse(_ bytes: [UInt8]) -> [Mount] {
        var out: [Mount] = []
        forEachLine(bytes) { fields in
            guard let dash = fields.firstIndex(where: { $0.equals("-") }), dash >= 5, fields.count >= dash + 3 else { return }
            // Read-only: the mount's own options (a read-only bind mount) or its filesystem's (ext4
            // remounted read-only after an error) start with "ro".
            func readOnly(_ options: ArraySlice<UInt8>) -> Bool {
                options.starts(with: "ro".utf8) && (options.count == 2 || options.dropFirst(2).first == UInt8(ascii: ","))
            }
            let mode = readOnly(fields[5]) || (fields.count > dash + 3 && readOnly(fields[dash + 3])) ? "ro" : "rw"
            out.append(Mount(
                mountPoint: fields[4].string.replacingEscapes(), type: fields[dash + 1].string,
                source: fields[dash + 2].string, device: fields[2].string, mode: mode))
        }
        return out
    }

    public func sample(elapsed: Duration?) throws -> [Reading] {
        // statvfs answers for the last mount at a mount point (the one on top, which hides the
        // others): only that one is counted.
        let all = Self.parse(try files.read(procRoot + "/self/mountinfo"))
        let top = Dictionary(all.enumerated().map { ($0.element.mountPoint, $0.offset) }, uniquingKeysWith: max)
        var seen: Set<String> = []
        let mounts = all.enumerated().filter { top[$0.element.mountPoint] == $0.offset }.map(\.element).filter {
            (!Self.pseudo.contains($0.type) || $0.mountPoint == "/dev/shm") && seen.insert($0.device).inserted
        }
        let statfs = self.statfs
        let answers = statfsGuard.runAll(mounts.map { mount in (mount.mountPoint, { statfs(mount.mountPoint) }) }, within: statfsDeadline)
        var out: [Reading] = []
        for (mount, answer) in zip(mounts, answers) {
            guard case .finished(let usage?) = answer, usage.totalBytes > 0 else { continue }
            let labels = [
                Reading.Label("system.device", mount.source), .init("system.filesystem.mode", mount.mode),
                .init("system.filesystem.mountpoint", mount.mountPoint), .init("system.filesystem.type", mount.type),
            ]
            out.append(Reading("system.filesystem.limit", labels, usage.totalBytes))
            out.append(Reading("system.filesystem.usage", labels + [.init("system.filesystem.state", "used")], usage.totalBytes - usage.freeBytes))
            out.append(Reading("system.filesystem.usage", labels + [.init("system.filesystem.state", "free")], usage.availableBytes))
            // Kept for root (ext4's 5 % by default): the three states sum to the limit, as `df`'s
            // use% counts it (but where a filesystem says more is available than free, as btrfs
            // may: then none is reserved and the sum is above the limit).
            out.append(Reading("system.filesystem.usage", labels + [.init("system.filesystem.state", "reserved")], max(0, usage.freeBytes - usage.availableBytes)))
            out.append(Reading("system.filesystem.inodes.limit", labels, usage.totalInodes))
            out.append(Reading("system.filesystem.inodes.usage", labels + [.init("system.filesystem.state", "used")], usage.totalInodes - usage.freeInodes))
        }
        return out
    }

    /// statvfs(3): free is what root may use; available what others may (the "free" users see).
    public static func statvfsUsage(_ path: String) -> Usage? {
        // The struct and the function share the name: pick the function by its type.
        let call: (UnsafePointer<CChar>, UnsafeMutablePointer<statvfs>) -> Int32 = statvfs
        var info = statvfs()
        guard call(path, &info) == 0 else { return nil }
        let block = Double(info.f_frsize)
        return Usage(
            totalBytes: Double(info.f_blocks) * block, freeBytes: Double(info.f_bfree) * block,
            availableBytes: Double(info.f_bavail) * block, totalInodes: Double(info.f_files),
            freeInodes: Double(info.f_ffree))
    }
}

extension String {
    /// mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash).
    func replacingEscapes() -> String {
        guard contains("\\") else { return self }
        var out: [UInt8] = []
        let bytes = Array(utf8)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\\"), index + 3 < bytes.count,
                let value = UInt8(String(decoding: bytes[(index + 1)...(index + 3)], as: UTF8.self), radix: 8)
            {
                out.append(value)
                index += 4
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
