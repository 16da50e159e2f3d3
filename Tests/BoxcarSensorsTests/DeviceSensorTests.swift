#if canImport(Glibc)
import Glibc
#endif
@testable import BoxcarSensors
import BoxcarTestSupport
import Foundation
import Synchronization
import Testing

/// Sensors of machines this one is not: fixture trees written by hand for a 2-GPU AMD box, an
/// InfiniBand host, a cgroup v2 container, a host with NFS and Lustre mounts, and one with NVMe,
/// SATA and device-mapper disks.
@Suite struct DeviceSensorTests {
    static var fixtures: String { HostSensorTests.fixtures }

    func value(_ readings: [Reading], _ key: String) -> Double? {
        readings.first { $0.seriesKey == key }?.value
    }

    @Test func disksAreNamedByModelSerialAndGivenName() throws {
        // sys-disks: nvme0n1 and sda give their model (and nvme0n1 its serial) in device/, padded
        // with spaces as drivers do; dm-0 its name in dm/name. sda1, a partition, is no disk.
        let sensor = DiskSensor(procRoot: Self.fixtures + "/proc-disks", sysRoot: Self.fixtures + "/sys-disks")
        let info = try sensor.sample(elapsed: nil).filter { $0.name == "system.disk.info" }.map(\.seriesKey)
        #expect(info == [
            #"system/system.disk.info{name="vg0-root",system.device="dm-0"}"#,
            #"system/system.disk.info{model="Samsung SSD 980 PRO 1TB",serial="S5GXNX0T123456K",system.device="nvme0n1"}"#,
            #"system/system.disk.info{model="INTEL SSDSC2KB96",system.device="sda"}"#,
        ])
    }

    @Test func libudevDescribesThisMachinesDisks() throws {
        // libudev reads the real /sys: every block device here is known to it, as a disk.
        let udev = try Udev()
        let disks = directoryEntries("/sys/block")
        #expect(!disks.isEmpty)
        for disk in disks {
            #expect(udev.properties(ofBlockDevice: disk, ["DEVTYPE"]) == ["DEVTYPE": "disk"], "\(disk)")
        }
        #expect(udev.properties(ofBlockDevice: "no-such-disk", ["DEVTYPE"]).isEmpty)
        #expect(throws: SensorError.self) { try Udev(path: "/nonexistent/libudev.so.1") }
        // A fixture tree is described from itself, never by the machine's udev.
        #expect(Udev.forSysRoot(Self.fixtures + "/sys-disks") == nil)
    }

    @Test func amdGPUsAreReadFromSysfs() throws {
        // card0: 73 % busy, 16 GiB of 64 GiB VRAM, 245 W (245,000,000 µW), 58 °C (58000 m°C);
        // card1: no power file. card2 is NVIDIA's (vendor 0x10de); card0-DP-1 a connector.
        let readings = try AMDGPUSensor(sysRoot: Self.fixtures + "/sys-amd").sample(elapsed: nil)
        let card0 = #"{hw.vendor="amd",index="0"}"#
        #expect(value(readings, "system/hw.gpu.utilization" + card0) == 0.73)
        #expect(value(readings, "system/hw.gpu.memory.usage" + card0) == 17_179_869_184)
        #expect(value(readings, "system/hw.gpu.memory.limit" + card0) == 68_702_699_520)
        #expect(value(readings, #"system/hw.power{hw.type="gpu",hw.vendor="amd",index="0"}"#) == 245)
        #expect(value(readings, #"system/hw.temperature{hw.sensor_location="edge",hw.vendor="amd",index="0"}"#) == 58)
        #expect(value(readings, #"system/hw.temperature{hw.sensor_location="junction",hw.vendor="amd",index="0"}"#) == 71)
        #expect(value(readings, #"system/hw.temperature{hw.sensor_location="mem",hw.vendor="amd",index="0"}"#) == 64)
        #expect(value(readings, "system/hw.gpu.memory.gtt.usage" + card0) == 1_073_741_824)
        #expect(value(readings, "system/hw.gpu.memory.gtt.limit" + card0) == 270_582_939_648)
        #expect(value(readings, #"system/hw.gpu.clock{clock="graphics",hw.vendor="amd",index="0"}"#) == 2_100_000_000)
        #expect(value(readings, #"system/hw.gpu.clock{clock="memory",hw.vendor="amd",index="0"}"#) == 1_300_000_000)
        #expect(value(readings, #"system/hw.gpu.utilization{hw.vendor="amd",index="1"}"#) == 0.05)
        // card1's hwmon has no labels: its temp1 is the edge sensor, as amdgpu numbers them.
        #expect(value(readings, #"system/hw.temperature{hw.sensor_location="edge",hw.vendor="amd",index="1"}"#) == 41)
        #expect(AMDGPUSensor(sysRoot: Self.fixtures + "/sys-amd").cardNames() == ["card0: AMD Instinct MI300X (0x74a1)", "card1: 0x740f"])
        #expect(!readings.contains { $0.seriesKey.contains(#"index="2""#) })
        #expect(readings.filter { $0.name == "hw.power" }.count == 1)
    }

    @Test func infinibandCountsFourByteWords() throws {
        // mlx5_0 port 1 over 2 s: +500,000,000 words sent, +250,000,000 received.
        let a = InfiniBandSensor(sysRoot: Self.fixtures + "/sys-ib-a")
        let b = InfiniBandSensor(sysRoot: Self.fixtures + "/sys-ib-b")
        let readings = b.readings(from: try a.snapshot(), to: try b.snapshot(), seconds: 2)
        #expect(value(readings, #"system/system.network.io.rate{network.interface.name="mlx5_0",network.io.direction="transmit",port="1"}"#) == 1_000_000_000)
        #expect(value(readings, #"system/system.network.io.rate{network.interface.name="mlx5_0",network.io.direction="receive",port="1"}"#) == 500_000_000)
    }

    /// A cgroup read from `proc` and the /sys tree `sysA`, then 2 s later from `sysB`: the first
    /// tick's readings and the second's.
    func cgroupTwice(proc: String, sysA: String, sysB: String) throws -> (first: [Reading], second: [Reading]) {
        let a = CgroupSensor(procRoot: Self.fixtures + proc, sysRoot: Self.fixtures + sysA)
        let first = try a.sample(elapsed: nil)
        let b = CgroupSensor(procRoot: Self.fixtures + proc, sysRoot: Self.fixtures + sysB)
        b.previous = a.previous
        return (first, try b.sample(elapsed: .seconds(2)))
    }

    @Test func aContainersCgroupGivesItsOwnLimitsAndUse() throws {
        // /kubepods/pod42/trainer: 4 GiB of 8 GiB, cpu.max 400000/100000 = 4 CPUs; over 2 s
        // usage_usec +6,000,000 (3 CPUs busy) and throttled_usec +500,000 (0.25 s/s).
        let (first, readings) = try cgroupTwice(proc: "/proc-cg", sysA: "/sys-cg-a", sysB: "/sys-cg-b")
        #expect(value(first, "system/container.memory.usage") == 4_294_967_296)
        #expect(value(first, "system/container.memory.limit") == 8_589_934_592)
        #expect(value(first, "system/container.cpu.limit") == 4)
        #expect(value(first, "system/container.cpu.usage") == nil)
        #expect(value(readings, "system/container.cpu.usage") == 3)
        #expect(value(readings, "system/container.cpu.throttled.rate") == 0.25)
    }

    /// A hybrid host (this machine's capture: memory, cpu and cpuacct in v1 hierarchies, v2
    /// mounted at /sys/fs/cgroup/unified without them): the same series from the v1 files.
    @Test func aCgroupV1HostGivesTheSameSeriesFromItsV1Files() throws {
        // memory:/process_api/68b7…: 2 GiB of 8 GiB, cfs 200000/100000 µs = 2 CPUs; over 2 s
        // cpuacct.usage +3,000,000,000 ns (1.5 CPUs busy), throttled_time +500,000,000 ns.
        let (first, readings) = try cgroupTwice(proc: "/proc-v1", sysA: "/sys-v1-a", sysB: "/sys-v1-b")
        #expect(value(first, "system/container.memory.usage") == 2_147_483_648)
        #expect(value(first, "system/container.memory.limit") == 8_589_934_592)
        #expect(value(first, "system/container.cpu.limit") == 2)
        #expect(value(first, "system/container.cpu.time") == 3495.772609)
        #expect(value(readings, "system/container.cpu.usage") == 1.5)
        #expect(value(readings, "system/container.cpu.throttled.rate") == 0.25)
        #expect(value(readings, "system/container.memory.usage") == 2_684_354_560)
        // 9223372036854771712, v1's "no limit": no limit series, as v2's "max".
        #expect(value(readings, "system/container.memory.limit") == nil)
    }

    /// Inside a container without its own cgroup namespace, the hierarchy mounted is the
    /// container's cgroup: its path is the mount's root, not a directory below it.
    @Test func aV1HierarchyMountedAtTheContainersCgroupIsReadAtItsMountPoint() {
        let sensor = CgroupSensor(procRoot: "/proc", sysRoot: "/host-sys")
        let mounts = CgroupSensor.hierarchies(Array("""
            35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw

            """.utf8))
        #expect(mounts.count == 2)
        #expect(sensor.directory(of: "memory", path: "/docker/abc", in: mounts) == "/host-sys/fs/cgroup/memory")
        #expect(sensor.directory(of: "cpuacct", path: "/docker/abc", in: mounts) == "/host-sys/fs/cgroup/cpu,cpuacct/docker/abc")
        #expect(sensor.directory(of: "cpu", path: "/", in: mounts) == "/host-sys/fs/cgroup/cpu,cpuacct")
        #expect(sensor.directory(of: "pids", path: "/", in: mounts) == nil)
    }

    @Test func aCgroupFileWithoutMemoryOrCPUControllersIsReported() throws {
        let directory = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.file("self"), withIntermediateDirectories: true)
        try "1:name=systemd:/\n".write(toFile: directory.file("self/cgroup"), atomically: true, encoding: .utf8)
        try "".write(toFile: directory.file("self/mountinfo"), atomically: true, encoding: .utf8)
        #expect { try CgroupSensor(procRoot: directory.path, sysRoot: "/nonexistent").sample(elapsed: nil) } throws: { error in
            "\(error)".contains("no cgroup v1 hierarchy")
        }
    }

    /// A mount is read-only when its own options say so (a read-only bind mount) or its
    /// filesystem's do (ext4 remounted read-only after an error); "rootcontext=…" is not "ro".
    @Test func aReadOnlyMountOrFilesystemIsModeRo() {
        let mountinfo = """
            30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
            31 30 8:2 / /data ro,relatime shared:2 - xfs /dev/sdb1 rw
            32 30 8:3 / /scratch rw,relatime shared:3 - ext4 /dev/sdc1 ro,errors=remount-ro
            33 30 0:40 / /secure rw,rootcontext=system_u:object_r:tmp_t:s0 - tmpfs tmpfs rw

            """
        let modes = FilesystemSensor.parse(Array(mountinfo.utf8)).map { "\($0.mountPoint) \($0.mode)" }
        #expect(modes == ["/ rw", "/data ro", "/scratch ro", "/secure rw"])
    }

    @Test func filesystemsAreRealMountsOnce() throws {
        var asked: [String] = []
        let sensor = FilesystemSensor(procRoot: Self.fixtures + "/proc-fs") { mountPoint in
            asked.append(mountPoint)
            return .init(totalBytes: 1000, freeBytes: 400, availableBytes: 300, totalInodes: 100, freeInodes: 90)
        }
        let readings = try sensor.sample(elapsed: nil)
        // tmpfs /dev/shm, nfs4 /data, lustre /scratch, xfs "/mnt/my disk", ext4 / (its last
        // mount, on top); not proc, cgroup2, nor / twice.
        #expect(asked == ["/dev/shm", "/data", "/scratch", "/mnt/my disk", "/"])
        #expect(value(readings, #"system/system.filesystem.limit{system.device="tmpfs",system.filesystem.mode="rw",system.filesystem.mountpoint="/dev/shm",system.filesystem.type="tmpfs"}"#) == 1000)
        let data = #"system.device="fileserver:/export/data",system.filesystem.mode="rw",system.filesystem.mountpoint="/data""#
        #expect(value(readings, "system/system.filesystem.limit{\(data),system.filesystem.type=\"nfs4\"}") == 1000)
        #expect(value(readings, "system/system.filesystem.usage{\(data),system.filesystem.state=\"used\",system.filesystem.type=\"nfs4\"}") == 600)
        #expect(value(readings, "system/system.filesystem.usage{\(data),system.filesystem.state=\"free\",system.filesystem.type=\"nfs4\"}") == 300)
        // 100 bytes free to root only: used + free + reserved is the limit.
        #expect(value(readings, "system/system.filesystem.usage{\(data),system.filesystem.state=\"reserved\",system.filesystem.type=\"nfs4\"}") == 100)
        #expect(value(readings, "system/system.filesystem.inodes.usage{\(data),system.filesystem.state=\"used\",system.filesystem.type=\"nfs4\"}") == 10)
        #expect(readings.contains { $0.seriesKey.contains(#"type="lustre""#) })
    }

    /// A local disk mounted over a network filesystem's mount point hides it: statvfs there
    /// answers for the disk, which alone is counted (under its own device and type).
    @Test func aMountHiddenUnderAnotherIsNotCounted() throws {
        let directory = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.file("self"), withIntermediateDirectories: true)
        try """
            22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
            41 22 0:51 / /scratch rw,relatime shared:31 - lustre 10.0.0.1@o2ib:/scratch rw
            44 41 254:32 / /scratch rw,relatime shared:33 - xfs /dev/vdc rw

            """.write(toFile: directory.file("self/mountinfo"), atomically: true, encoding: .utf8)
        var asked: [String] = []
        let sensor = FilesystemSensor(procRoot: directory.path) { mountPoint in
            asked.append(mountPoint)
            return .init(totalBytes: 1000, freeBytes: 400, availableBytes: 300, totalInodes: 100, freeInodes: 90)
        }
        let readings = try sensor.sample(elapsed: nil)
        #expect(asked == ["/", "/scratch"])
        #expect(value(readings, #"system/system.filesystem.limit{system.device="/dev/vdc",system.filesystem.mode="rw",system.filesystem.mountpoint="/scratch",system.filesystem.type="xfs"}"#) == 1000)
        #expect(!readings.contains { $0.seriesKey.contains("lustre") })
    }

    @Test func aHungNetworkMountIsLeftOutAndTheOthersAreRead() throws {
        // statvfs on /data (nfs4) does not return while its server is gone.
        final class Server: @unchecked Sendable {
            let state = Mutex(false)
            var isUp: Bool { state.withLock { $0 } }
        }
        let server = Server()
        let sensor = FilesystemSensor(procRoot: Self.fixtures + "/proc-fs", statfs: { mountPoint in
            while mountPoint == "/data" && !server.isUp { usleep(1000) }
            return .init(totalBytes: 1000, freeBytes: 400, availableBytes: 300, totalInodes: 100, freeInodes: 90)
        }, statfsDeadline: .seconds(2))  // long enough that a loaded machine's healthy mounts answer in it
        func mountPoints() throws -> Set<String> {
            Set(try sensor.sample(elapsed: nil).compactMap { $0.labels.first { $0.name == "system.filesystem.mountpoint" }?.value })
        }
        let started = ContinuousClock.now
        #expect(try mountPoints() == ["/", "/dev/shm", "/scratch", "/mnt/my disk"])
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(sensor.hungMounts == ["/data"])
        let again = ContinuousClock.now
        #expect(try mountPoints() == ["/", "/dev/shm", "/scratch", "/mnt/my disk"])
        #expect(ContinuousClock.now - again < .seconds(1))  // not waited for a second time
        server.state.withLock { $0 = true }  // the server is back
        // Its call returns within a millisecond of that, and the sensor forgets the mount.
        let back = ContinuousClock.now
        while !sensor.hungMounts.isEmpty && ContinuousClock.now - back < .seconds(30) { usleep(1000) }
        #expect(sensor.hungMounts.isEmpty)
        #expect(try mountPoints() == ["/", "/dev/shm", "/data", "/scratch", "/mnt/my disk"])
    }

    @Test func theRealFilesystemsHaveSaneNumbers() throws {
        let readings = try FilesystemSensor().sample(elapsed: nil)
        #expect(!readings.isEmpty)
        #expect(readings.allSatisfy { $0.value >= 0 })
    }
}
