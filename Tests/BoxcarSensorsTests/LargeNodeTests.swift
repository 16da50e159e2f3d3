@testable import BoxcarSensors
import BoxcarTestSupport
import Foundation
import Testing

/// The sensors over a large training node (Scripts/fixtures/large-node.py, written afresh into
/// a temporary directory: 192 CPUs, 16 NVMe disks with a partition each, 8 InfiniBand ports, a
/// trainer tree of 400 processes among the system's own): nothing is capped, dropped or
/// counted twice at that size. boxcar-bench sensors-large times the same tree.
@Suite struct LargeNodeTests {
    let directory = TemporaryDirectory()
    var proc: String { directory.path + "/proc" }
    var sys: String { directory.path + "/sys" }

    init() throws {
        try writeLargeNode(to: directory.path)
    }

    func keys(_ readings: [Reading], _ name: String) -> Set<String> {
        Set(readings.filter { $0.name == name }.map(\.seriesKey))
    }

    @Test func everyCPUAndEveryStateIsCounted() throws {
        let readings = try CPUSensor(procRoot: proc, clockTicksPerSecond: 100).sample(elapsed: nil)
        let times = readings.filter { $0.name == "system.cpu.time" }
        #expect(times.count == 192 * 8)
        #expect(Set(times.map(\.seriesKey)).count == 192 * 8)
        #expect(times.contains { $0.seriesKey == #"system/system.cpu.time{cpu.logical_number="191",cpu.mode="user"}"# })
        // The load averages of a node this busy.
        #expect(readings.first { $0.name == "system.cpu.load_average.1m" }?.value == 171.23)
    }

    @Test func eachWholeDiskOnceAndNoPartitionOrLoopDevice() throws {
        let sensor = DiskSensor(procRoot: proc, sysRoot: sys, udev: nil)
        let readings = try sensor.sample(elapsed: nil)
        let devices = Set(readings.compactMap { $0.labels.first { $0.name == "system.device" }?.value })
        #expect(devices == Set((0..<16).map { "nvme\($0)n1" }))
        #expect(keys(readings, "system.disk.info").count == 16)
        #expect(readings.contains { $0.name == "system.disk.info" && $0.labels.contains(.init("serial", "S7CBNE0W000015")) })
    }

    @Test func everyInfiniBandPortAndItsInterface() throws {
        let ports = try InfiniBandSensor(sysRoot: sys).sample(elapsed: nil)
        #expect(Set(ports.compactMap { $0.labels.first { $0.name == "network.interface.name" }?.value }) == Set((0..<8).map { "mlx5_\($0)" }))
        #expect(ports.count == 8 * 2)  // data sent and received, as they stand, on the first tick
        let network = try NetworkSensor(procRoot: proc, sysRoot: sys).sample(elapsed: nil)
        let interfaces = Set(network.compactMap { $0.labels.first { $0.name == "network.interface.name" }?.value })
        // The physical ports: not the loopback, not the bridge of the containers.
        #expect(interfaces == Set(["eth0", "eth1"] + (0..<8).map { "ib\($0)" }))
        // Each link's state, speed (none while down) and MTU.
        #expect(network.filter { $0.name == "system.network.interface.up" }.map(\.value).reduce(0, +) == 9)
        #expect(network.first { $0.name == "system.network.interface.speed" && $0.labels.contains(.init("network.interface.name", "ib3")) }?.value == 50_000_000_000)
        #expect(!network.contains { $0.name == "system.network.interface.speed" && $0.labels.contains(.init("network.interface.name", "eth1")) })
        #expect(network.filter { $0.name == "system.network.interface.mtu" }.count == 10)
    }

    @Test func theTrainersTreeOf400Processes() throws {
        let sensor = ProcessTreeSensor(procRoot: proc, clockTicksPerSecond: 100, pageSize: 4096, cpuCount: 192)
        let readings = try #require(sensor.sample(roots: [4000], seconds: 0)[4000])
        #expect(readings.first { $0.name == "process.count" }?.value == 400)
        #expect(sensor.lastTree[4000]?.count == 400)
        // 8 ranks of 96 threads, 384 data-loader workers of 4, torchrun's 6 and 7 helpers' 2.
        #expect(readings.first { $0.name == "process.thread.count" }?.value == Double(8 * 96 + 384 * 4 + 6 + 7 * 2))
        // Resident memory: 8 ranks of 12,000,000 pages, 384 workers of 1,500,000, 60,000 and 7 × 200,000.
        let pages = 8 * 12_000_000 + 384 * 1_500_000 + 60_000 + 7 * 200_000
        #expect(readings.first { $0.name == "process.memory.usage" }?.value == Double(pages * 4096))
        // Descriptors: the ranks' 32, torchrun's 8 and 4 of every other process.
        #expect(readings.first { $0.name == "process.unix.file_descriptor.count" }?.value == Double(8 * 32 + 8 + 391 * 4))
    }
}
